"""gcnet against tests/reference/gcnet.py: attention/avg pooling, add/mul/both fusion, ratios."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.gcnet import GlobalContext

C = 64  # P = 4 at the default ratio: an LN over one unit would hide the context
SHAPES = [
    {"x": [2, C, 7, 9]},  # non-square, odd
    {"x": [1, C, 5, 12]},  # batch 1 (LN, not BN: trains at batch 1)
    {"x": [3, C, 1, 1]},  # a single position: softmax weight 1
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # paper: att pooling, add, r = 16
        {"fusion_types": ["channel_mul"]},
        {"fusion_types": ["channel_add", "channel_mul"], "ratio": 0.25},  # both: mul first, whatever the order
        {"pooling_type": "avg", "fusion_types": ["channel_mul", "channel_add"]},
        {"ratio": 0.01},  # int(C * ratio) == 0: P floored at 1
        {"ratio": 0.125, "fusion_types": ["channel_mul"], "pooling_type": "avg"},
    ],
)
def test_matches_reference(params):
    ref = GlobalContext(C, **{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    check_against_reference("gcnet", {"channels": C, **params}, ref, SHAPES)


def test_other_ranks_run():
    import torch

    m = attndsl.build("gcnet", channels=8, fusion_types=["channel_add", "channel_mul"])
    for shape in ([2, 8, 5], [1, 8, 3, 4, 5]):
        assert m(torch.randn(*shape)).shape == tuple(shape)


def test_defaults_and_identity_start():
    import torch

    m = attndsl.build("gcnet", channels=64)
    assert m.get_submodule("channel_add_conv.0").weight.shape == (4, 64)  # P = 64 / 16
    assert m.conv_mask.weight.shape == (1, 64)
    assert "channel_mul_conv" not in dict(m.named_modules())
    x = torch.randn(2, 64, 5, 6)
    torch.testing.assert_close(m(x), x)  # zero last conv: the add block is the identity
