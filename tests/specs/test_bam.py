"""bam against tests/reference/bam.py: the paper's sum fusion, the official product, depths and dilations."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.bam import BAM

TRAIN_SHAPES = [
    {"x": [2, 32, 7, 9]},  # non-square, odd (official avg pool would not be global here)
    {"x": [3, 32, 12, 5]},
    {"x": [2, 32, 3, 3]},  # smaller than the dilation
]
EVAL_SHAPES = [
    {"x": [1, 32, 6, 11]},  # batch 1: the BN on the pooled vector needs batch > 1 to train
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # paper: r=16, d=4, two dilated convs, sum
        {"fusion": "product"},  # official code
        {"reduction": 4, "dilation": 2, "num_dilated": 3, "num_layers": 2},
        {"num_dilated": 0, "reduction": 64, "fusion": "product"},  # hidden floored at 1
    ],
)
def test_matches_reference(params):
    check_against_reference("bam", {"channels": 32, **params}, BAM(32, **params), TRAIN_SHAPES)
    check_against_reference("bam", {"channels": 32, **params}, BAM(32, **params), EVAL_SHAPES, modes=("eval",))


def test_defaults_are_the_papers():
    m = attndsl.build("bam", channels=64)
    assert m.get_submodule("fc.0").weight.shape == (4, 64) and m.fc_final.weight.shape == (64, 4)
    d = m.get_submodule("dilated.1")
    assert d.dilation == (4, 4) and d.padding == (4, 4)
    assert "dilated.2" not in dict(m.named_modules())
