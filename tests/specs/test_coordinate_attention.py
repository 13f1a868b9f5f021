"""coordinate_attention against tests/reference/coordinate_attention.py: both activations, widths, odd sizes."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.coordinate_attention import CoordinateAttention

SHAPES = [
    {"x": [2, 16, 7, 9]},  # non-square, odd
    {"x": [1, 16, 5, 12]},  # batch 1 (BN statistics over the H + W positions)
    {"x": [3, 16, 1, 6]},  # a single row
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official: r = 32, mip >= 8, h-swish
        {"activation": "relu"},
        {"reduction": 2, "min_hidden": 4},  # mip = 8 from C // r
        {"reduction": 8, "min_hidden": 1, "activation": "relu"},  # mip = 2
    ],
)
def test_matches_reference(params):
    check_against_reference(
        "coordinate_attention", {"channels": 16, **params}, CoordinateAttention(16, **params), SHAPES
    )


def test_defaults_are_the_official_code():
    m = attndsl.build("coordinate_attention", channels=64)
    assert m.conv1.weight.shape == (8, 64, 1, 1)  # mip = max(8, 64 // 32)
    assert m.conv_h.weight.shape == m.conv_w.weight.shape == (64, 8, 1, 1)
    assert attndsl.build("coordinate_attention", channels=512).conv1.weight.shape[0] == 16
