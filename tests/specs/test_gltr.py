"""gltr against tests/reference/gltr.py: the paper's pyramid, other depths, kernel widths and branch widths."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.gltr import GLTR

SHAPES = [
    {"x": [2, 12, 8]},
    {"x": [1, 12, 5]},  # batch 1, odd length shorter than the widest dilation
    {"x": [3, 12, 13]},
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # N=3, w=3, alpha=2, C'=C
        {"branches": 2, "kernel_size": 5, "reduction": 4},
        {"branch_channels": 4, "reduction": 1},  # C' = C // N
        {"branches": 4, "kernel_size": 1, "branch_channels": 5, "reduction": 3},  # frame-wise branches
        {"branches": 1, "reduction": 64},  # embed floor max(1, .)
    ],
)
def test_matches_reference(params):
    check_against_reference("gltr", {"channels": 12, **params}, GLTR(12, **params), SHAPES)


def test_defaults_are_the_papers():
    m = attndsl.build("gltr", channels=16)
    assert [m.get_submodule(f"dtp.{i}").dilation for i in range(3)] == [(1,), (2,), (4,)]
    assert m.conv_b.weight.shape == (24, 48, 1) and m.W.weight.shape == (48, 48, 1)
