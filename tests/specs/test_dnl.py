"""dnl against tests/reference/dnl.py: 1-D, 2-D and 3-D inputs, the whitening, unary and downsampling variants."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.dnl import DNL

SHAPES = [
    {"x": [2, 8, 7, 9]},  # 2-D, odd and non-square (pooling floors to 3x4)
    {"x": [1, 8, 11]},  # 1-D, batch 1
    {"x": [2, 8, 3, 5, 4]},  # 3-D video: time is not pooled
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official DNL config
        {"downsample": True},
        {"whiten": False},
        {"unary": False, "reduction": 4},
        {"whiten": False, "unary": False, "temperature": 1.0},  # plain embedded-Gaussian NL, gamma-gated
        {"downsample": True, "whiten": False, "temperature": 0.5, "reduction": 1},
    ],
)
def test_matches_reference(params):
    check_against_reference("dnl", {"channels": 8, **params}, DNL(8, **params), SHAPES)


def test_defaults_and_init():
    m = attndsl.build("dnl", channels=16)
    assert m.conv_query.weight.shape == (8, 16) and m.conv_value.bias is None
    assert m.conv_mask.weight.shape == (1, 16)
    assert torch.equal(m.gamma, torch.zeros(1))  # the pairwise term starts off
    assert torch.equal(m.conv_query.bias, torch.zeros(8))
    assert "conv_mask" not in dict(attndsl.build("dnl", channels=16, unary=False).named_modules())
