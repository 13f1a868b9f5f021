"""attention_gate against tests/reference/attention_gate.py: gating at and off theta's resolution,
odd sizes, the paper's form, both resampling conventions."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.attention_gate import AttentionGate

SHAPES = [
    {"x": [2, 8, 14, 10], "g": [2, 12, 7, 5]},  # gating at theta's resolution (no resampling of phi(g))
    {"x": [1, 8, 9, 11], "g": [1, 12, 3, 4]},  # batch 1, odd sizes: theta floors to 4x5, phi(g) upsampled
    {"x": [3, 8, 6, 7], "g": [3, 12, 5, 2]},  # gating finer than theta's output along H
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official defaults
        {"align_corners": True},  # the PyTorch 0.3 behaviour
        {"sub_sample_factor": 1, "output_transform": False},  # the paper's equations
        {"inter_channels": 3, "sub_sample_factor": 3},
    ],
)
def test_matches_reference(params):
    full = {"channels": 8, "gating_channels": 12, **params}
    check_against_reference("attention_gate", full, AttentionGate(**full), SHAPES)


def test_default_gating_channels():
    check_against_reference(
        "attention_gate", {"channels": 8}, AttentionGate(8), [{"x": [2, 8, 8, 6], "g": [2, 8, 2, 3]}]
    )


def test_defaults_are_the_official_code():
    m = attndsl.build("attention_gate", channels=64, gating_channels=128)
    assert m.theta.weight.shape == (32, 64, 2, 2) and m.theta.stride == (2, 2) and m.theta.bias is None
    assert m.phi.weight.shape == (32, 128, 1, 1) and m.psi.weight.shape == (1, 32, 1, 1)
    assert m.W.weight.shape == (64, 64, 1, 1) and m.bn.num_features == 64
    assert "W" not in dict(attndsl.build("attention_gate", channels=8, output_transform=False).named_modules())
