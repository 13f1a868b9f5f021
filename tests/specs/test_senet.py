"""senet against tests/reference/senet.py, at 1-D, 2-D and 3-D inputs."""

import pytest

from tests.oracle import check_against_reference
from tests.reference.senet import SqueezeExcitation

SHAPES = [
    {"x": [2, 32, 7, 9]},  # 2-D, non-square, odd
    {"x": [1, 32, 5]},  # 1-D, batch 1
    {"x": [3, 32, 3, 4, 5]},  # 3-D
]


@pytest.mark.parametrize("channels,reduction", [(32, 16), (32, 4), (48, 8)])
def test_matches_reference(channels, reduction):
    shapes = [{"x": [s["x"][0], channels, *s["x"][2:]]} for s in SHAPES]
    check_against_reference(
        "senet", {"channels": channels, "reduction": reduction}, SqueezeExcitation(channels, reduction), shapes
    )


def test_default_reduction_is_the_papers():
    import attndsl

    m = attndsl.build("senet", channels=64)
    assert m.fc1.weight.shape == (4, 64)  # 64 / 16
