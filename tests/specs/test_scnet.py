"""scnet against tests/reference/scnet.py: official defaults, the paper's bilinear Up and bare convs, strides."""

import pytest

import attndsl
from tests.oracle import check_against_reference, transfer
from tests.reference.scnet import SCNet

SHAPES = [
    {"x": [2, 16, 9, 14]},  # odd, non-square, not a multiple of r
    {"x": [1, 16, 8, 8]},  # batch 1
    {"x": [3, 16, 5, 11]},
]


def key_map(norm):
    """Spec `kI` / `kI_bn` -> reference `kI.conv` / `kI.bn`."""
    out = {f"k{i}.weight": f"k{i}.conv.weight" for i in range(1, 5)}
    if norm:
        out.update(
            {
                f"k{i}_bn.{k}": f"k{i}.bn.{k}"
                for i in range(1, 5)
                for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
            }
        )
    return out


def reference_for(block):
    """The reference at block's parameters, with its weights (also benchmarks/realsize.py's)."""
    p = block.meta["compiled"].params
    ref = SCNet(**p)
    transfer(block, ref, key_map(p["norm"]))
    return ref


@pytest.mark.parametrize(
    "params",
    [
        {},  # official: r=4, BN + ReLU, nearest
        {"upsample": "bilinear"},  # the paper's Up
        {"norm": False, "pooling_r": 2},  # the paper's bare convolutions
        {"stride": 2, "pooling_r": 3, "upsample": "bilinear"},
    ],
)
def test_matches_reference(params):
    check_against_reference(
        "scnet", {"channels": 16, **params}, reference_for, SHAPES, key_map=key_map(params.get("norm", True))
    )


def test_defaults_are_the_official_codes():
    m = attndsl.build("scnet", channels=64)
    assert m.k2.weight.shape == (32, 32, 3, 3) and m.k2.bias is None
    assert m.k4.stride == (1, 1) and hasattr(m, "k4_bn")
