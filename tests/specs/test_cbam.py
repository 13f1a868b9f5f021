"""cbam against tests/reference/cbam.py: defaults, every pool type, and the paper/official variants."""

import pytest

from tests.oracle import check_against_reference
from tests.reference.cbam import CBAM

SHAPES = [
    {"x": [2, 32, 7, 9]},  # non-square, odd
    {"x": [1, 32, 5, 12]},  # batch 1
    {"x": [3, 32, 4, 4]},  # smaller than the 7x7 kernel
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official defaults
        {"reduction": 4, "pool_types": ["avg", "max", "lp", "lse"]},
        {"pool_types": ["lse"], "kernel_size": 3},
        {"spatial_bn": False},  # the paper's spatial gate
        {"no_spatial": True, "pool_types": ["max", "lp"]},  # channel attention only
    ],
)
def test_matches_reference(params):
    check_against_reference("cbam", {"channels": 32, **params}, CBAM(32, **params), SHAPES)


def test_hidden_width_floor():
    # C // r == 0: the reference keeps one hidden unit
    check_against_reference("cbam", {"channels": 8, "reduction": 16}, CBAM(8, reduction=16), [{"x": [2, 8, 3, 5]}])


def test_defaults_are_the_official_code():
    import attndsl

    m = attndsl.build("cbam", channels=64)
    assert m.fc1.weight.shape == (4, 64)  # r = 16
    assert m.conv.weight.shape == (1, 2, 7, 7) and m.conv.bias is None
    assert m.bn.momentum == 0.01
