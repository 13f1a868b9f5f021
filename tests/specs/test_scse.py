"""scse against tests/reference/scse.py: 1-D, 2-D and 3-D inputs, every fusion."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.scse import SCSE

SHAPES = [
    {"x": [2, 12, 7, 9]},  # 2-D, odd and non-square
    {"x": [1, 12, 11]},  # 1-D, batch 1
    {"x": [3, 12, 3, 5, 4]},  # 3-D
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official: r = 2, max-out fusion
        {"fusion": "add"},  # MICCAI paper
        {"fusion": "mul", "reduction": 4},  # TMI ablation
        {"reduction": 16},  # C // r == 0: one hidden unit
    ],
)
def test_matches_reference(params):
    check_against_reference("scse", {"channels": 12, **params}, SCSE(12, **params), SHAPES)


def test_defaults_are_the_official_code():
    m = attndsl.build("scse", channels=64)
    assert m.fc1.weight.shape == (32, 64)  # r = 2
    assert m.conv.weight.shape == (1, 64) and m.conv.bias is not None
