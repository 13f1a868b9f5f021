"""gala against tests/reference/gala.py: the official GALA-v2 settings, the paper's form, every interaction."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.gala import GALA

SHAPES = [
    {"x": [2, 16, 7, 9]},  # non-square, odd
    {"x": [1, 16, 5, 12]},  # batch 1 (no BN)
    {"x": [3, 16, 3, 2]},  # smaller than the 5x5 extra conv
]
PAPER = {"extra_convs": 0, "squash": "tanh", "global_out_relu": False}


@pytest.mark.parametrize(
    "params",
    [
        {},  # official GALA-v2: extra 5x5, sigmoid, ReLU on G
        PAPER,  # GALA.paper()
        {**PAPER, "interaction": "additive"},
        {"interaction": "multiplicative", "reduction": 8},
        {"extra_convs": 2, "extra_kernel": 3, "squash": "tanh"},
    ],
)
def test_matches_reference(params):
    check_against_reference("gala", {"channels": 16, **params}, GALA(16, **params), SHAPES)


def test_defaults_are_the_official_code():
    m = attndsl.build("gala", channels=64)
    assert m.fc1.weight.shape == (16, 64) and m.conv1.weight.shape == (16, 64, 1, 1)  # r = 4
    assert m.get_submodule("extra.0").weight.shape == (16, 16, 5, 5)
    assert m.a.shape == (64,) and m.m.shape == (64,)
    assert "a" not in dict(attndsl.build("gala", channels=64, interaction="additive").named_parameters())
