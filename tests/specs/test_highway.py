"""highway against tests/reference/highway.py (its fully connected, per-position form): every activation."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.highway import Highway

SHAPES = [
    {"x": [2, 10, 7, 9]},  # 2-D, odd and non-square
    {"x": [1, 10, 11]},  # 1-D, batch 1
    {"x": [3, 10, 3, 5, 4]},  # 3-D
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # relu plain layer, gate bias -2
        {"activation": "tanh"},
        {"activation": "sigmoid", "gate_bias": -1.0},
    ],
)
def test_matches_reference(params):
    check_against_reference("highway", {"channels": 10, **params}, Highway(10, **params), SHAPES)


def test_gate_bias_init():
    m = attndsl.build("highway", channels=16, gate_bias=-3.0)
    assert torch.equal(m.T.bias, torch.full((16,), -3.0))
    assert m.H.weight.shape == m.T.weight.shape == (16, 16)
    assert torch.equal(attndsl.build("highway", channels=4).T.bias, torch.full((4,), -2.0))
