"""nat against tests/reference/nat.py (NATTEN's window and bias-start formulas, long-index gathers):
kernel sizes, head counts, maps smaller than the kernel, no bias, explicit scale."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.nat import NeighborhoodAttention2D

SIZES = [(5, 6), (7, 3), (3, 3), (2, 4), (9, 8)]  # borders on both sides, maps below the kernel


@pytest.mark.parametrize(
    "params",
    [
        {"channels": 16, "num_heads": 2, "kernel_size": 3},
        {"channels": 12, "num_heads": 3, "kernel_size": 5},
        {"channels": 8, "num_heads": 1, "kernel_size": 7, "qkv_bias": False},  # the paper's kernel
        {"channels": 8, "num_heads": 2, "kernel_size": 3, "rel_pos_bias": False, "qk_scale": 0.7},
        {"channels": 6, "num_heads": 2, "kernel_size": 1},  # each query sees itself
    ],
)
def test_matches_reference(params):
    shapes = [{"x": [2 if i % 2 else 1, h, w, params["channels"]]} for i, (h, w) in enumerate(SIZES)]
    ref = NeighborhoodAttention2D(**{"dim" if k == "channels" else k: v for k, v in params.items()})  # official name
    check_against_reference("nat", params, ref, shapes)


def test_defaults_are_the_officials():
    sd = attndsl.build("nat", channels=64).state_dict()
    assert sd["rpb"].shape == (2, 13, 13)  # head width 32, kernel 7
    assert sd["qkv.weight"].shape == (192, 64) and "qkv.bias" in sd and "proj.bias" in sd
