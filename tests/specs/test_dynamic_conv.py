"""dynamic_conv against tests/reference/dynamic_conv.py: temperatures, K, bias, groups, strides, widths."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.dynamic_conv import DynamicConv

SHAPES = [
    {"x": [2, 8, 7, 9]},  # non-square, odd
    {"x": [1, 8, 5, 12]},  # batch 1
    {"x": [3, 8, 4, 4]},
]
KEY_MAP = {"biases": "bias"}  # the spec's flag is `bias`, so the per-kernel tensor is `biases`


@pytest.mark.parametrize(
    "params",
    [
        {},  # K = 4, r = 4, tau = 30, bias on
        {"temperature": 1.0},  # after the annealing
        {"bias": False, "num_kernels": 2, "reduction": 16},  # C // r == 0: one hidden unit
        {"groups": 8, "temperature": 0.5},  # depthwise
        {"stride": 2, "out_channels": 12, "groups": 4},
        {"kernel_size": 5, "dilation": 2, "padding": 4, "num_kernels": 1},
    ],
)
def test_matches_reference(params):
    p = {"channels": 8, **params}
    check_against_reference("dynamic_conv", p, DynamicConv(**p), SHAPES, key_map=KEY_MAP)


def test_per_sample_kernels():
    m = attndsl.build("dynamic_conv", channels=8, temperature=1.0).double()
    x = torch.randn(3, 8, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(m(x), torch.cat([m(x[i : i + 1]) for i in range(3)]))


def test_defaults_are_the_papers():
    m = attndsl.build("dynamic_conv", channels=16)
    assert m.weight.shape == (4, 16, 16, 3, 3) and m.biases.shape == (4, 16)
    assert m.fc1.weight.shape == (4, 16) and m.fc2.weight.shape == (4, 4)
