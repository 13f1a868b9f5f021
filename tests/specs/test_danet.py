"""danet against tests/reference/danet.py: both modules, each alone, both CAM energies, DANetHead."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.danet import DANet

KEY_MAP = {
    "query_conv.weight": "pam.query_conv.weight",
    "query_conv.bias": "pam.query_conv.bias",
    "key_conv.weight": "pam.key_conv.weight",
    "key_conv.bias": "pam.key_conv.bias",
    "value_conv.weight": "pam.value_conv.weight",
    "value_conv.bias": "pam.value_conv.bias",
    "pam_gamma": "pam.gamma",
    "cam_gamma": "cam.gamma",
}
SHAPES = [
    {"x": [2, 16, 7, 9]},  # non-square, odd
    {"x": [1, 16, 5, 12]},  # batch 1
    {"x": [3, 16, 1, 4]},
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official: both, rowmax(A) - A, no head
        {"cam_energy": "plain"},  # the paper's Eq. 3
        {"branches": "position", "reduction": 4},
        {"branches": "channel", "cam_energy": "plain"},
        {"head": True, "reduction": 2},  # DANetHead convs around the modules
        {"head": True, "branches": "channel"},
    ],
)
def test_matches_reference(params):
    check_against_reference("danet", {"channels": 16, **params}, DANet(16, **params), SHAPES, key_map=KEY_MAP)


def test_defaults_and_start():
    import torch

    m = attndsl.build("danet", channels=64)
    assert m.query_conv.weight.shape == (8, 64) and m.value_conv.weight.shape == (64, 64)
    assert torch.equal(m.pam_gamma, torch.zeros(1)) and torch.equal(m.cam_gamma, torch.zeros(1))
    x = torch.randn(2, 64, 5, 6)
    torch.testing.assert_close(m(x), 2 * x)  # both gammas 0: x + x
    assert attndsl.build("danet", channels=64, head=True)(x).shape == (2, 16, 5, 6)
