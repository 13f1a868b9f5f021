"""shuffle_attention against tests/reference/shuffle_attention.py: group counts, one channel per half."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.shuffle_attention import ShuffleAttention

SHAPES = [
    {"x": [2, 32, 7, 9]},  # non-square, odd
    {"x": [1, 32, 5, 12]},  # batch 1
    {"x": [3, 32, 1, 4]},  # a single row
]


@pytest.mark.parametrize("groups", [4, 2, 16, 1])  # 16: one channel per half
def test_matches_reference(groups):
    check_against_reference(
        "shuffle_attention", {"channels": 32, "groups": groups}, ShuffleAttention(32, groups), SHAPES
    )


def test_eps_variant():
    check_against_reference(
        "shuffle_attention",
        {"channels": 24, "groups": 3, "eps": 1e-3},
        ShuffleAttention(24, 3, eps=1e-3),
        [{"x": [2, 24, 4, 6]}],
    )


def test_defaults_are_the_official_code():
    m = attndsl.build("shuffle_attention", channels=256)
    assert m.cweight.shape == (2,)  # 256 / (2 * 64)
    assert torch.equal(m.cweight, torch.zeros(2)) and torch.equal(m.cbias, torch.ones(2))
    assert torch.equal(m.sweight, torch.zeros(2)) and torch.equal(m.sbias, torch.ones(2))
    assert m.gn.num_groups == 2 and m.gn.eps == 1e-5
    # at initialisation every gate is sigmoid(1): the output is the shuffled input times it
    x = torch.randn(2, 256, 3, 4)
    shuffled = x.reshape(2, 2, 128, 3, 4).transpose(1, 2).reshape(2, 256, 3, 4)
    torch.testing.assert_close(m(x), shuffled * torch.sigmoid(torch.tensor(1.0)))


def test_channels_must_split_into_groups():
    with pytest.raises(attndsl.AttnDSLError, match="divisible"):
        attndsl.build("shuffle_attention", channels=60, groups=8)
