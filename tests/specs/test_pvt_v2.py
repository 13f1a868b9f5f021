"""pvt_v2 against timm's PVT v2 Attention (timm.models.pvt_v2): plain, spatial-reduction and linear
SRA, head counts, and the `convert` section loading timm's weights."""

import pytest
import timm
import torch

import attndsl
from attndsl.checkpoints import from_module
from tests.oracle import check_against_reference, randomize
from tests.reference.pvt_v2 import PvtV2Attention, key_map

SHAPES = [
    {"x": [2, 8, 8, 24]},
    {"x": [1, 7, 5, 24]},  # batch 1, sizes the reduction ratio does not divide (floor)
    {"x": [3, 4, 9, 24]},
]


@pytest.mark.parametrize(
    "params",
    [
        {"channels": 24},  # stage-1 form: 1 head, R = 8
        {"channels": 24, "num_heads": 2, "sr_ratio": 2},
        {"channels": 24, "num_heads": 3, "sr_ratio": 4, "ln_eps": 1e-6},
        {"channels": 24, "num_heads": 4, "sr_ratio": 1, "qkv_bias": False},  # no reduction: full attention
        {"channels": 24, "num_heads": 2, "linear_attn": True},  # PVT v2-li, pool 7 (up-samples small maps)
        {"channels": 24, "num_heads": 6, "linear_attn": True, "pool_size": 3},
    ],
)
def test_matches_timm(params):
    shapes = SHAPES
    if params.get("sr_ratio", 8) > 4 and not params.get("linear_attn"):
        shapes = [{"x": [2, 16, 17, 24]}, {"x": [1, 8, 8, 24]}]  # at least one R x R cell
    ref = PvtV2Attention(**params)
    check_against_reference("pvt_v2", params, ref, shapes, key_map=key_map(ref))


@pytest.mark.parametrize("name,stage", [("pvt_v2_b0", 0), ("pvt_v2_b0", 3), ("pvt_v2_b2_li", 1)])
def test_timm_weights_convert(name, stage):
    model = timm.create_model(name)
    src = model.stages[stage].blocks[0].attn
    randomize(src)
    src.eval()
    ours = from_module(src).eval()
    h, w = 16, 17  # one 8 x 8 cell and more at stage 0
    x = torch.randn(2, h, w, src.dim)
    torch.testing.assert_close(
        ours(x), src(x.reshape(2, h * w, src.dim), [h, w]).reshape(2, h, w, -1), atol=1e-5, rtol=1e-4
    )
    assert ours.params["num_heads"] == src.num_heads
    assert ours.params["linear_attn"] == (name == "pvt_v2_b2_li")


def test_defaults_are_the_papers():
    m = attndsl.build("pvt_v2", channels=64)
    assert m.sr.weight.shape == (64, 64, 8, 8) and m.norm.eps == 1e-5
    assert m.q.bias is not None and m.kv.weight.shape == (128, 64)
