"""lrnet against tests/reference/lrnet.py: window sizes, group widths, the three composabilities, geometry width,
with and without the output projection."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.lrnet import LRNet

SHAPES = [
    {"x": [2, 16, 6, 7]},  # odd, non-square
    {"x": [1, 16, 5, 3]},  # batch 1, narrower than the window
    {"x": [3, 16, 4, 4]},
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # paper: k = 7, m = 8, squared difference
        {"m": 4, "kernel_size": 3, "composability": "abs_diff"},
        {"m": 2, "kernel_size": 5, "composability": "product", "out_channels": 12},
        {"m": 16, "kernel_size": 3, "out_proj": False},  # one group; y itself
        {"m": 4, "kernel_size": 1, "geometry_hidden": 3},  # k = 1: the output is proj(x)
        {"m": 8, "kernel_size": 9, "geometry_hidden": 5, "composability": "product"},  # windows wider than the image
    ],
)
def test_matches_reference(params):
    p = {"channels": 16, **params}
    check_against_reference("lrnet", p, LRNet(**p), SHAPES)


def test_defaults_are_the_papers():
    m = attndsl.build("lrnet", channels=64)
    assert m.query.weight.shape == (8, 64, 1, 1) and m.query.bias is None  # G = 64 / 8
    assert m.get_submodule("geometry.0").weight.shape == (4, 2, 1, 1)  # hidden G // 2
    assert m.get_submodule("geometry.2").weight.shape == (8, 4, 1, 1)
    assert m.proj.weight.shape == (64, 64, 1, 1)
