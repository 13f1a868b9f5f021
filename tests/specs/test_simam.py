"""simam against tests/reference/simam.py: 1-D, 2-D and 3-D inputs, both variances, lambdas."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.simam import SimAM

SHAPES = [
    {"x": [2, 6, 7, 9]},  # 2-D, odd and non-square
    {"x": [1, 6, 11]},  # 1-D, batch 1
    {"x": [3, 6, 3, 5, 4]},  # 3-D
    {"x": [2, 6, 1, 2]},  # two positions: M - 1 = 1
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official: lambda = 1e-4, unbiased variance
        {"unbiased": False},  # the paper's 1/M
        {"e_lambda": 0.1},  # the README's ImageNet setting
        {"e_lambda": 0.5, "unbiased": False},
    ],
)
def test_matches_reference(params):
    check_against_reference("simam", {"channels": 6, **params}, SimAM(6, **params), SHAPES)


def test_parameter_free():
    assert not list(attndsl.build("simam", channels=64).state_dict())
