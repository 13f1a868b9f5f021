"""Weights of timm's attention modules load into attndsl blocks through the specs' `convert`
sections, and a timm model with its attention modules replaced gives the same logits."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import attndsl
from attndsl.checkpoints import conversions, convert_state_dict, from_module, replace_modules, specs_for
from attndsl.errors import AttnDSLError, SpecError
from attndsl.hosts import AttnLayer


def _randomise(model):
    """Non-trivial BN statistics and affine terms: an identity-like BN would hide a wrong mapping."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
            if isinstance(m, nn.LayerNorm) or type(m).__name__ == "LayerNorm2d":
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return model


def _ge(c, **_):
    # timm 1.0.x cannot build GatherExcite's MLP (ConvMlp(..., *dd)); build it parameter-free, then
    # give it the ConvMlp its constructor would have made
    from timm.layers import ConvMlp, GatherExcite

    ge = GatherExcite(c, use_mlp=False)
    ge.mlp = ConvMlp(c, max(1, round(c / 16)), act_layer=nn.ReLU)
    return ge


MODELS = {  # model, timm class replaced, spec
    "seresnet18": (lambda: timm.create_model("seresnet18"), "SEModule", "senet"),
    "ecaresnet26t": (lambda: timm.create_model("ecaresnet26t"), "EcaModule", "ecanet"),
    "resnet18-cbam": (lambda: timm.create_model("resnet18", block_args=dict(attn_layer="cbam")), "CbamModule", "cbam"),
    "gcresnext26ts": (lambda: timm.create_model("gcresnext26ts"), "GlobalContext", "gcnet"),
    "resnet18-gc-scale": (
        lambda: timm.create_model("resnet18", block_args=dict(attn_layer="gc")),
        "GlobalContext",
        "gcnet",
    ),
    "skresnet18": (lambda: timm.create_model("skresnet18"), "SelectiveKernel", "sknet"),
    "resnest14d": (lambda: timm.create_model("resnest14d"), "SplitAttn", "resnest"),
    "resnet18-nl": (
        lambda: timm.create_model("resnet18", block_args=dict(attn_layer="nl")),
        "NonLocalAttn",
        "non_local",
    ),
    "resnet18-ge": (lambda: timm.create_model("resnet18", block_args=dict(attn_layer=_ge)), "GatherExcite", "genet"),
    "resnet18-coord": (
        lambda: timm.create_model("resnet18", block_args=dict(attn_layer="coord")),
        "CoordAttn",
        "coordinate_attention",
    ),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_converted_model_gives_the_same_logits(name):
    make, cls, spec = MODELS[name]
    torch.manual_seed(0)
    model = _randomise(make()).double().eval()
    n = sum(type(m).__name__ == cls for m in model.modules())
    assert n > 0
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        replaced = replace_modules(model, input_shape=x.shape)
        assert len(replaced) == n and not any(type(m).__name__ == cls for m in model.modules())
        blocks = [model.get_submodule(p) for p in replaced]
        assert all(isinstance(b, AttnLayer) and b.spec_id == spec and not b.training for b in blocks)
        out = model(x)
    err = (out - ref).abs().max().item()
    assert err <= 1e-10 * max(1.0, ref.abs().max().item()), err


def test_se_state_dict_converts_with_rounded_width_and_1x1_layout():
    from timm.layers import SEModule

    se = SEModule(40)  # timm: 40 / 16 = 2.5, rounded up to a multiple of 8
    assert se.fc1.weight.shape == (8, 40, 1, 1)
    params, keys = convert_state_dict("senet", se.state_dict(), module=se)
    assert params == {"channels": 40, "reduction": 5}
    block = from_module(se)
    assert block.params["reduction"] == 5 and block.fc1.weight.shape == (8, 40)
    assert torch.equal(block.fc1.weight, se.fc1.weight.reshape(8, 40))
    x = torch.randn(2, 40, 5, 6)
    torch.testing.assert_close(block(x), se(x))


def test_unconvertible_modules_are_refused_with_the_reason():
    from timm.layers import SEModule

    with pytest.raises(AttnDSLError, match=r"`fc1.weight` \[8, 30, 1, 1\] does not fit `fc1.weight` \[10, 30\]"):
        from_module(SEModule(30))  # width 8: no integer reduction gives it for 30 channels
    with pytest.raises(AttnDSLError, match="`add_maxpool` is True, the conversion needs False"):
        from_module(SEModule(32, add_maxpool=True))
    with pytest.raises(AttnDSLError, match="`act` is SiLU, the conversion needs ReLU"):
        from_module(SEModule(32, act_layer=nn.SiLU))
    with pytest.raises(AttnDSLError, match="keys differ: missing .*fc1.bias"):
        from_module(SEModule(32, bias=False))
    with pytest.raises(AttnDSLError, match="no spec declares a timm conversion from Conv2d"):
        from_module(nn.Conv2d(3, 3, 1))
    with pytest.raises(AttnDSLError, match="declares no conversion from torchvision"):
        conversions("senet", "torchvision")
    with pytest.raises(AttnDSLError, match="reads `input\\[1\\]` off the module's input"):
        from_module(timm.layers.EcaModule(64))
    assert from_module(timm.layers.EcaModule(64), input_shape=(1, 64, 4, 4)).params["k_size"] == 3


def test_specs_are_found_by_class():
    assert specs_for("SEModule") == ["senet"] and specs_for("SplitAttn") == ["resnest"]
    assert specs_for("Conv2d") == []


def test_convert_sections_are_checked(tmp_path):
    text = (attndsl.registry.find_spec("senet")).read_text()
    bad = tmp_path / "senet.yaml"
    bad.write_text(text.replace('params: {channels: "fc1.weight[1]"', 'params: {channels: "fc1.weight"'))
    with pytest.raises(SpecError, match="must be read off a shape") as e:
        conversions(bad)
    assert e.value.span is not None and e.value.span.file == str(bad)
    bad.write_text(text.replace("    module: SEModule", "    module: SEModule\n    kyes: {}"))
    with pytest.raises(SpecError, match="unknown field `kyes`"):
        conversions(bad)
    bad.write_text(text.replace('reduction: "fc1.weight[1] // fc1.weight[0]"', 'reducton: "fc1.weight[0]"'))
    with pytest.raises(SpecError, match="has no parameter `reducton`"):
        conversions(bad)
