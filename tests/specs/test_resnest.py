"""resnest against tests/reference/resnest.py: radix 1-3, cardinality, stride, dilation, widths, no BN."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.resnest import SplitAttention

TRAIN_SHAPES = [
    {"x": [2, 16, 7, 9]},  # non-square, odd
    {"x": [3, 16, 5, 4]},
]
EVAL_SHAPES = [
    {"x": [1, 16, 6, 11]},  # batch 1: the BN on the pooled map needs batch > 1 to train
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # ResNeSt-50: radix 2, cardinality 1
        {"radix": 1},  # sigmoid gate
        {"radix": 4, "groups": 2, "reduction_factor": 1},  # inter = 64 > 32, cardinal regrouping
        {"groups": 4, "radix": 2, "out_channels": 8, "stride": 2},
        {"dilation": 2, "kernel_size": 5, "bias": True},
        {"padding": 0, "stride": 2, "groups": 2},
    ],
)
def test_matches_reference(params):
    p = {"channels": 16, **params}
    check_against_reference("resnest", p, SplitAttention(**p), TRAIN_SHAPES)
    check_against_reference("resnest", p, SplitAttention(**p), EVAL_SHAPES, modes=("eval",))


def test_radix_three():
    # C' = 12 channels in 2 cardinal groups of 3 splits; the main conv has 6 groups
    p = {"channels": 12, "radix": 3, "groups": 2}
    shapes = [{"x": [2, 12, 5, 7]}, {"x": [4, 12, 3, 3]}]
    check_against_reference("resnest", p, SplitAttention(**p), shapes)


@pytest.mark.parametrize("params", [{"norm": False}, {"norm": False, "radix": 4, "groups": 2}])
def test_without_bn_batch_one_trains(params):
    p = {"channels": 16, **params}
    check_against_reference("resnest", p, SplitAttention(**p), TRAIN_SHAPES + EVAL_SHAPES)


def test_defaults_are_resnest50():
    m = attndsl.build("resnest", channels=64)
    assert m.conv.weight.shape == (128, 32, 3, 3) and m.conv.bias is None  # C' * R outputs, R groups
    assert m.conv.padding == (1, 1)
    assert m.fc1.weight.shape == (32, 64, 1, 1)  # inter = max(64 * 2 // 4, 32)
    assert m.fc2.weight.shape == (128, 32, 1, 1)
    assert attndsl.build("resnest", channels=128).fc1.weight.shape[0] == 64
