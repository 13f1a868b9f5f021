"""glore against tests/reference/glore.py: 1-D, 2-D and 3-D inputs, node counts, the normalize option."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.glore import GloRe

KEY_MAP = {
    "gcn_conv1.weight": "gcn.conv1.weight",
    "gcn_conv1.bias": "gcn.conv1.bias",
    "gcn_conv2.weight": "gcn.conv2.weight",
}

SHAPES = [
    {"x": [2, 16, 7, 9]},  # 2-D, odd and non-square
    {"x": [1, 16, 11]},  # 1-D, batch 1 (the BN sees B * N positions)
    {"x": [2, 16, 3, 5, 4]},  # 3-D video
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official: mid = C/4, no normalisation
        {"normalize": True},
        {"mid_channels": 6, "normalize": True},
        {"mid_channels": 1, "bn_eps": 1e-5},
    ],
)
def test_matches_reference(params):
    check_against_reference("glore", {"channels": 16, **params}, GloRe(16, **params), SHAPES, key_map=KEY_MAP)


def test_defaults_and_identity_start():
    m = attndsl.build("glore", channels=64)
    assert m.conv_state.weight.shape == (32, 64) and m.conv_proj.weight.shape == (16, 64)
    assert m.gcn_conv1.weight.shape == (16, 16) and m.gcn_conv2.bias is None
    assert m.blocker.eps == 1e-4 and torch.equal(m.blocker.weight, torch.zeros(64))
    x = torch.randn(2, 64, 5, 6)
    torch.testing.assert_close(m(x), x)
