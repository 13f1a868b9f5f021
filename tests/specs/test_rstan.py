"""rstan against tests/reference/rstan.py: odd, non-square maps, one frame, other widths."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.rstan import RSTAN


def shapes(c, hidden):
    return [
        {"x": [2, c, 4, 7, 5], "h": [2, hidden]},  # odd, non-square
        {"x": [1, c, 3, 3, 6], "h": [1, hidden]},  # batch 1
        {"x": [3, c, 1, 2, 2], "h": [3, hidden]},  # one frame: beta = 1
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"hidden_size": 512, "attn_dim": 512},  # the defaults
        {"hidden_size": 12, "attn_dim": 7},
        {"hidden_size": 3, "attn_dim": 1},
    ],
)
def test_matches_reference(params):
    check_against_reference("rstan", {"channels": 16, **params}, RSTAN(16, **params), shapes(16, params["hidden_size"]))


def test_output_is_a_convex_combination_of_the_features():
    m = attndsl.build("rstan", channels=4, hidden_size=6, attn_dim=5).double()
    x = torch.randn(2, 4, 3, 5, 5, dtype=torch.float64)
    x[:, 1] = 2.5  # a constant channel stays constant
    y = m(x, torch.randn(2, 6, dtype=torch.float64))
    torch.testing.assert_close(y[:, 1], torch.full((2,), 2.5, dtype=torch.float64))
    assert attndsl.build("rstan", channels=8).W_xs.weight.shape == (512, 8)
