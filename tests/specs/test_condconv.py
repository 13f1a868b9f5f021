"""condconv against tests/reference/condconv.py: experts, per-expert bias, depthwise, strides, widths."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.condconv import CondConv

SHAPES = [
    {"x": [2, 8, 7, 9]},  # non-square, odd
    {"x": [1, 8, 5, 12]},  # batch 1
    {"x": [3, 8, 4, 4]},
]
KEY_MAP = {"biases": "bias"}  # the spec's flag is `bias`, so the per-expert tensor is `biases`


@pytest.mark.parametrize(
    "params",
    [
        {},  # 8 experts, 3x3 'same', no bias
        {"bias": True, "num_experts": 4},
        {"groups": 8, "bias": True},  # depthwise CondConv
        {"stride": 2, "out_channels": 12, "groups": 4},
        {"kernel_size": 5, "dilation": 2, "num_experts": 1},  # padding 4 keeps the size
        {"kernel_size": 1, "padding": 1, "stride": 2},
    ],
)
def test_matches_reference(params):
    p = {"channels": 8, **params}
    check_against_reference("condconv", p, CondConv(**p), SHAPES, key_map=KEY_MAP)


def test_per_example_kernels():
    # each example is convolved with its own mixed kernel: the batch result equals one-by-one results
    m = attndsl.build("condconv", channels=8, bias=True).double()
    x = torch.randn(3, 8, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(m(x), torch.cat([m(x[i : i + 1]) for i in range(3)]))


def test_defaults_are_the_official_code():
    m = attndsl.build("condconv", channels=16)
    assert m.weight.shape == (8, 16, 16, 3, 3)
    assert m.routing.weight.shape == (8, 16) and torch.equal(m.routing.bias, torch.zeros(8))
    assert "biases" not in dict(m.named_parameters())
