"""encnet against tests/reference/encnet.py: both outputs (y, se_logits)."""

import pytest

from tests.oracle import check_against_reference
from tests.reference.encnet import ContextEncoding

SHAPES = [
    {"x": [2, 0, 7, 9]},  # non-square, odd
    {"x": [1, 0, 5, 3]},  # batch 1
    {"x": [3, 0, 4, 4]},
]


def shapes_for(channels):
    return [{"x": [s["x"][0], channels, *s["x"][2:]]} for s in SHAPES]


@pytest.mark.parametrize(
    "channels,params",
    [
        (16, {}),  # defaults: K = 32, 21 classes
        (24, {"ncodes": 8, "num_classes": 5}),
        (12, {"ncodes": 6, "num_classes": 3, "residual": True}),  # the official relu(x + x * gamma)
    ],
)
def test_matches_reference(channels, params):
    check_against_reference(
        "encnet", {"channels": channels, **params}, ContextEncoding(channels, **params), shapes_for(channels)
    )


def test_defaults_are_the_official_ones():
    import attndsl

    m = attndsl.build("encnet", channels=64)
    assert m.codewords.shape == (32, 64) and m.scale.shape == (32,)
    assert m.selayer.out_features == 21
    assert (m.scale < 0).all()  # the code's sign convention: scale = -s
