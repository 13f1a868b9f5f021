"""gsopnet against tests/reference/gsopnet.py (2-D only, as the official block)."""

import pytest

from tests.oracle import check_against_reference
from tests.reference.gsopnet import GSoP

SHAPES = [
    {"x": [2, 0, 7, 9]},  # non-square, odd
    {"x": [1, 0, 5, 4]},  # batch 1
    {"x": [3, 0, 6, 6]},
]


def shapes_for(channels):
    return [{"x": [s["x"][0], channels, *s["x"][2:]]} for s in SHAPES]


@pytest.mark.parametrize(
    "channels,params",
    [
        (32, {"att_dim": 8}),
        (24, {"att_dim": 6, "reduce_stride": 2}),  # the official first-stage stride
        (16, {"att_dim": 12, "pre_relu": False}),  # conv on x itself
    ],
)
def test_matches_reference(channels, params):
    check_against_reference("gsopnet", {"channels": channels, **params}, GSoP(channels, **params), shapes_for(channels))


def test_defaults_are_the_official_ones():
    import attndsl

    m = attndsl.build("gsopnet", channels=256)
    assert m.reduce_conv.weight.shape == (128, 256, 1, 1)  # att_dim 128
    assert m.row_conv.weight.shape == (512, 1, 128, 1)  # 4 outputs per row, d groups
    assert m.reduce_conv.stride == (1, 1)
