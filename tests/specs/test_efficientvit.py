"""efficientvit against timm's LiteMLA (timm.models.efficientvit_mit): head sizes, scales, biases,
no projection norm, and the `convert` section loading timm's weights."""

import pytest
import torch
from timm.models.efficientvit_mit import EfficientVitBlock, LiteMLA

import attndsl
from attndsl.checkpoints import from_module
from tests.oracle import check_against_reference, randomize, transfer
from tests.reference.efficientvit import efficientvit, key_map

SHAPES = [
    {"x": [2, 16, 7, 9]},  # odd, non-square
    {"x": [1, 16, 5, 3]},  # batch 1, smaller than the 5 x 5 aggregation kernel in one axis
    {"x": [3, 16, 4, 4]},
]


def shapes_for(c):
    return [{"x": [s["x"][0], c, *s["x"][2:]]} for s in SHAPES]


def reference_for(block):
    """The reference at block's parameters, with its weights (also benchmarks/realsize.py's)."""
    p = block.meta["compiled"].params
    ref = efficientvit(**p)
    transfer(block, ref, key_map(p["scales"]))
    return ref


@pytest.mark.parametrize(
    "params",
    [
        {"channels": 16, "head_dim": 8},  # official form, 2 heads
        {"channels": 16, "head_dim": 4, "scales": [3, 5], "eps": 1e-3},  # two scales, 4 heads
        {"channels": 16, "head_dim": 8, "heads": 3, "out_channels": 12, "scales": []},  # no aggregation
        {"channels": 16, "head_dim": 16, "qkv_bias": True, "proj_bias": True, "proj_norm": False},
        {"channels": 16, "head_dim": 4, "heads_ratio": 0.5, "scales": [1, 3, 7]},
    ],
)
def test_matches_timm(params):
    check_against_reference(
        "efficientvit", params, reference_for, shapes_for(16), key_map=key_map(params.get("scales", [5]))
    )


def test_matches_unmodified_timm_at_float32_precision():
    # positive inputs keep most denominators well above eps, where float32 rounding is not amplified
    p = {"channels": 16, "head_dim": 8, "scales": [3, 5]}
    check_against_reference(
        "efficientvit",
        p,
        efficientvit(**p, exact=False),
        shapes_for(16),
        key_map=key_map(p["scales"]),
        atol=1e-4,
        rtol=1e-3,
        input_fn=lambda n, s, g: torch.rand(*s, generator=g, dtype=torch.float64),
    )


def test_timm_weights_convert():
    torch.manual_seed(0)
    blk = EfficientVitBlock(32, head_dim=8)
    src = blk.context_module.main
    randomize(src)
    src.eval()
    ours = from_module(src).eval()
    assert ours.params["heads"] == 4 and ours.params["scales"] == [5]
    x = torch.randn(2, 32, 6, 5)
    torch.testing.assert_close(ours(x), src(x), atol=1e-5, rtol=1e-4)
    odd = LiteMLA(32, 32, heads=3, dim=8)  # a head count heads_ratio 1 does not give
    with pytest.raises(attndsl.AttnDSLError, match="does not fit"):
        from_module(odd)


def test_defaults_are_the_papers():
    m = attndsl.build("efficientvit", channels=64)
    assert m.qkv.weight.shape == (192, 64, 1, 1) and m.qkv.bias is None
    assert m.get_submodule("aggreg_dw.0").weight.shape == (192, 1, 5, 5)
    assert m.get_submodule("aggreg_pw.0").groups == 6 and m.proj.weight.shape == (64, 128, 1, 1)
