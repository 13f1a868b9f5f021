"""sknet against tests/reference/sknet.py: M = 2 and 3 branches, strides, group counts."""

import pytest

from tests.oracle import check_against_reference
from tests.reference.sknet import SelectiveKernel


def key_map(branches):
    """Spec `branch_conv.i` / `branch_bn.i` -> reference `branches.i.conv` / `branches.i.bn`."""
    out = {}
    for i in range(branches):
        out[f"branch_conv.{i}.weight"] = f"branches.{i}.conv.weight"
        for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"branch_bn.{i}.{k}"] = f"branches.{i}.bn.{k}"
    return out


TRAIN_SHAPES = [
    {"x": [2, 64, 7, 9]},  # non-square, odd
    {"x": [3, 64, 5, 4]},
]
EVAL_SHAPES = [
    {"x": [1, 64, 6, 11]},  # batch 1: the BN on the pooled vector needs batch > 1 to train
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # paper: M=2, G=32, r=16, L=32
        {"branches": 3, "groups": 16, "reduction": 2, "min_dim": 8},  # M=3 (3x3, 5x5, 7x7)
        {"stride": 2},  # downsampling SK unit
        {"branches": 1, "groups": 1},
    ],
)
def test_matches_reference(params):
    m = params.get("branches", 2)
    spec_params = {"channels": 64, **params}
    check_against_reference("sknet", spec_params, SelectiveKernel(**spec_params), TRAIN_SHAPES, key_map=key_map(m))
    check_against_reference(
        "sknet", spec_params, SelectiveKernel(**spec_params), EVAL_SHAPES, key_map=key_map(m), modes=("eval",)
    )


def test_defaults_are_the_papers():
    import attndsl

    m = attndsl.build("sknet", channels=128)
    assert m.fc.weight.shape == (32, 128)  # d = max(128 // 16, 32)
    assert m.select.weight.shape == (256, 32)  # M * C rows
    assert m.get_submodule("branch_conv.1").dilation == (2, 2) and m.get_submodule("branch_conv.1").groups == 32
