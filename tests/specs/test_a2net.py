"""a2net against tests/reference/a2net.py: 1-D, 2-D and 3-D inputs, widths, with and without the residual."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.a2net import DoubleAttention

SHAPES = [
    {"x": [2, 16, 7, 9]},  # 2-D, odd and non-square
    {"x": [1, 16, 11]},  # 1-D, batch 1
    {"x": [2, 16, 3, 5, 4]},  # 3-D video
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # c_m = c_n = C/4, residual
        {"residual": False},
        {"c_m": 6, "c_n": 3},  # m != n
        {"c_m": 1, "c_n": 5, "residual": False},
    ],
)
def test_matches_reference(params):
    check_against_reference("a2net", {"channels": 16, **params}, DoubleAttention(16, **params), SHAPES)


def test_defaults():
    m = attndsl.build("a2net", channels=64)
    assert m.phi.weight.shape == (16, 64) and m.theta.weight.shape == (16, 64)
    assert m.rho.weight.shape == (16, 64) and m.proj.weight.shape == (64, 16)
    assert attndsl.build("a2net", channels=2).phi.weight.shape == (1, 2)  # floor 1
