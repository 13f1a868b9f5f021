"""eanet against tests/reference/eanet.py: default S = 64 and other memory sizes."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.eanet import EANet

SHAPES = [
    {"x": [2, 16, 7, 9]},  # non-square, odd
    {"x": [1, 16, 5, 12]},  # batch 1: the BN sees the 60 positions
    {"x": [3, 16, 4, 1]},
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official S = 64 (more units than channels here)
        {"memory_units": 8},
        {"memory_units": 1},  # one unit: the l1 step makes every weight 1
    ],
)
def test_matches_reference(params):
    check_against_reference("eanet", {"channels": 16, **params}, EANet(16, **params), SHAPES)


def test_other_ranks_run():
    import torch

    m = attndsl.build("eanet", channels=8, memory_units=4)
    for shape in ([2, 8, 5], [1, 8, 3, 4, 5]):
        assert m(torch.randn(*shape)).shape == tuple(shape)


def test_defaults_are_the_official_code():
    m = attndsl.build("eanet", channels=32)
    assert m.linear_0.weight.shape == (64, 32) and m.linear_0.bias is None  # S = 64, no bias
    assert m.linear_1.weight.shape == (32, 64) and m.linear_1.bias is None
    assert m.conv1.bias is not None and m.get_submodule("conv2.0").bias is None
