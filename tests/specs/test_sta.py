"""sta against tests/reference/sta.py: clip lengths, blocks that do not divide H, both norms."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.sta import STA

SHAPES = [
    {"x": [2, 4, 16, 8, 4]},  # K = 4 divides H
    {"x": [1, 3, 16, 7, 5]},  # batch 1, odd: blocks of 2, 2, 2, 1 rows
    {"x": [3, 5, 16, 6, 9]},  # non-square, first two blocks one row longer
    {"x": [2, 1, 16, 4, 3]},  # one frame: S = 1, X1 = X2 = x
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # paper: K = 4, squared norm
        {"squared": False},  # plain L2 norm (reimplementations)
        {"parts": 3},
        {"parts": 2},
        # (parts=1 is degenerate: every frame then scores exactly 1/T and the argmax is decided by rounding)
    ],
)
def test_matches_reference(params):
    check_against_reference("sta", {"channels": 16, **params}, STA(16, **params), SHAPES)


def test_scores_sum_to_one_and_any_clip_length():
    m = attndsl.build("sta", channels=8).double()
    assert not list(m.parameters())  # parameter-free
    x = torch.randn(2, 6, 8, 9, 5, dtype=torch.float64)
    y = m(x)
    assert y.shape == (2, 16, 9, 5)
    ref = STA(8)
    torch.testing.assert_close(ref.scores(x).sum(dim=1), torch.ones(2, 4, dtype=torch.float64))
    torch.testing.assert_close(y, ref(x))
