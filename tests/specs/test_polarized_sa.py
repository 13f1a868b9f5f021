"""polarized_sa against tests/reference/polarized_sa.py: both layouts, the paper's form and
the official PSA_p / PSA_s forms, and mixed variants."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.polarized_sa import PolarizedSelfAttention

SHAPES = [
    {"x": [2, 32, 7, 9]},  # non-square, odd
    {"x": [1, 32, 5, 12]},  # batch 1
    {"x": [3, 32, 1, 1]},  # one position: every softmax over H x W is 1
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # paper, parallel
        {"layout": "sequential"},  # paper, sequential
        {"layout": "parallel", "ch_transform": "none", "sp_softmax": "logits"},  # official PSA_p
        {"layout": "sequential", "ch_transform": "bottleneck", "sp_softmax": "value"},  # official PSA_s
        {"ch_transform": "bottleneck", "ratio": 2, "sp_softmax": "logits"},
        {"layout": "sequential", "ch_transform": "none", "sp_softmax": "value"},
    ],
)
def test_matches_reference(params):
    check_against_reference("polarized_sa", {"channels": 32, **params}, PolarizedSelfAttention(32, **params), SHAPES)


def test_odd_channels():
    # C/2 floors, as the official planes // 2
    check_against_reference(
        "polarized_sa",
        {"channels": 10, "layout": "sequential"},
        PolarizedSelfAttention(10, layout="sequential"),
        [{"x": [2, 10, 4, 3]}],
    )


def test_official_bottleneck_width():
    m = attndsl.build("polarized_sa", channels=256, ch_transform="bottleneck")
    assert m.up1.weight.shape == (32, 128) and m.up2.weight.shape == (256, 32)  # C/2 -> C/8 -> C
    assert m.ch_q.weight.shape == (1, 256, 1, 1) and m.ch_q.bias is None
    assert m.sp_q.weight.shape == (128, 256, 1, 1)


def test_maps_are_the_two_attentions():
    m = attndsl.build("polarized_sa", channels=16).eval()
    x = torch.randn(2, 16, 4, 5)
    with attndsl.capture(m) as maps:
        y = m(x)
    s_ch, s_sp = maps[""]["s_ch"], maps[""]["s_sp"]
    assert s_ch.shape == (2, 16) and s_sp.shape == (2, 1, 4, 5)
    torch.testing.assert_close(y, x * s_ch[:, :, None, None] + x * s_sp)
