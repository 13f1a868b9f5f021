"""outlook_attention against the reference written from the VOLO equations and against timm's
OutlookAttention (timm.models.volo): strides 1, 2 and 3, kernels, heads, the v bias, and the
`convert` section loading the outlooker weights of a timm VOLO model."""

import pytest
import timm
import torch
from timm.models.volo import OutlookAttention as TimmOutlookAttention

import attndsl
from attndsl.checkpoints import from_module
from tests.oracle import check_against_reference, randomize
from tests.reference.outlook_attention import OutlookAttention

SHAPES = [
    {"x": [2, 7, 9, 12]},  # odd, non-square: partial pooling cells at stride 2
    {"x": [1, 1, 2, 12]},  # batch 1, a map smaller than the window
    {"x": [3, 4, 6, 12]},  # sizes stride 2 divides
]

VARIANTS = [
    {"channels": 12, "num_heads": 2},  # VOLO form: K 3, p 1, stride 2
    {"channels": 12, "num_heads": 3, "stride": 1},  # timm's class default
    {"channels": 12, "num_heads": 1, "stride": 1, "kernel_size": 5, "padding": 2, "qkv_bias": True},
    {"channels": 12, "num_heads": 4, "stride": 3, "qkv_bias": True},
    {"channels": 12, "num_heads": 6, "kernel_size": 1, "padding": 0, "stride": 2},  # one-slot windows
]


@pytest.mark.parametrize("params", VARIANTS)
def test_matches_reference(params):
    check_against_reference("outlook_attention", params, OutlookAttention(**params), SHAPES)


@pytest.mark.parametrize("params", VARIANTS)
def test_matches_timm(params):
    kw = {"stride": 2, **{k: v for k, v in params.items() if k not in ("channels", "num_heads")}}  # timm: stride 1
    ref = TimmOutlookAttention(params["channels"], params["num_heads"], **kw)
    check_against_reference("outlook_attention", params, ref, SHAPES)


@pytest.mark.parametrize("stage", [0, 1])
def test_timm_weights_convert(stage):
    model = timm.create_model("volo_d1_224")
    src = model.network[0][stage].attn  # an outlooker of stage 1 (stride 2, 6 heads)
    randomize(src)
    src.eval()
    ours = from_module(src).eval()
    assert (ours.params["num_heads"], ours.params["stride"], ours.params["kernel_size"]) == (6, 2, 3)
    assert ours.params["qkv_bias"] is False
    x = torch.randn(2, 9, 8, 192)
    torch.testing.assert_close(ours(x), src(x), atol=1e-5, rtol=1e-4)


def test_convert_with_v_bias():
    src = TimmOutlookAttention(16, 4, stride=1, qkv_bias=True)
    randomize(src)
    ours = from_module(src)
    assert ours.params["qkv_bias"] is True and ours.params["stride"] == 1
    x = torch.randn(2, 5, 3, 16)
    torch.testing.assert_close(ours(x), src(x), atol=1e-5, rtol=1e-4)


def test_defaults_are_the_papers():
    m = attndsl.layer("outlook_attention")(192)
    assert m.params["num_heads"] == 6 and m.params["stride"] == 2 and m.params["padding"] == 1
    assert m.params["kernel_size"] == 3 and m.params["qkv_bias"] is False
    assert m.attn.weight.shape == (3**4 * 6, 192) and m.v.bias is None and m.proj.bias is not None
