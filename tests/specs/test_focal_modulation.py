"""focal_modulation against the reference written from the FocalNet equations and against timm's
FocalModulation (timm.models.focalnet): focal levels, windows, biases, post norm, normalisation,
both layouts (channels_last, the official [B, H, W, C]; channels_first, timm's [B, C, H, W]), and the
`convert` section loading timm FocalNet weights and swapping the block into a timm FocalNet."""

import pytest
import timm
import torch
from timm.models.focalnet import FocalNet

import attndsl
from attndsl.checkpoints import from_module, replace_modules
from attndsl.hosts import AttnLayer
from tests.oracle import check_against_reference, randomize
from tests.reference.focal_modulation import FocalModulation, TimmFocalModulation, timm_key_map

SHAPES = [
    {"x": [2, 7, 9, 8]},  # odd, non-square
    {"x": [1, 1, 3, 8]},  # batch 1, a map smaller than the kernels
    {"x": [3, 4, 4, 8]},
]
LAYOUTS = ["channels_last", "channels_first"]


def shapes(layout):
    """SHAPES ([B, H, W, C]) in the layout's order."""
    if layout == "channels_last":
        return SHAPES
    return [{"x": [b, c, h, w]} for b, h, w, c in (s["x"] for s in SHAPES)]


VARIANTS = [
    {"channels": 8},  # FocalNet-T/S/B (SRF)
    {"channels": 8, "focal_level": 3},  # LRF
    {"channels": 8, "focal_level": 3, "focal_window": 5, "use_post_norm": True, "normalize_modulator": True},
    {"channels": 8, "focal_level": 4, "focal_window": 3, "use_post_norm": True, "ln_eps": 1e-6},  # fl4
    {"channels": 8, "focal_level": 1, "focal_window": 1, "focal_factor": 4, "bias": False},
    {"channels": 8, "focal_level": 0},  # only the global level
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("params", VARIANTS)
def test_matches_reference(params, layout):
    params = {**params, "layout": layout}
    check_against_reference("focal_modulation", params, FocalModulation(**params), shapes(layout))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("params", VARIANTS)
def test_matches_timm(params, layout):
    params = {**params, "layout": layout}
    ref = TimmFocalModulation(**params)
    check_against_reference("focal_modulation", params, ref, shapes(layout), key_map=timm_key_map(ref))


@pytest.mark.parametrize(
    "model,stage",
    [
        ("focalnet_tiny_srf", 0),
        ("focalnet_tiny_lrf", 2),
        (
            dict(
                depths=(1, 1),
                embed_dim=16,
                focal_levels=(3, 4),
                focal_windows=(5, 3),
                use_post_norm=True,
                use_post_norm_in_modulation=True,
                normalize_modulator=True,
            ),
            1,
        ),  # the fl4 form, small
    ],
)
def test_timm_weights_convert(model, stage):
    net = timm.create_model(model) if isinstance(model, str) else FocalNet(**model)
    src = net.layers[stage].blocks[0].modulation
    randomize(src)
    src.double().eval()
    ours = from_module(src).eval()
    assert ours.params["focal_level"] == src.focal_level and ours.params["focal_window"] == src.focal_window
    assert ours.params["use_post_norm"] == src.use_post_norm
    assert ours.params["normalize_modulator"] == src.normalize_modulator
    assert ours.params["layout"] == "channels_first"  # timm's [B, C, H, W], in place of src
    x = torch.randn(2, src.dim, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(ours(x), src(x), atol=1e-9, rtol=1e-7)


def test_replace_modules_in_a_timm_focalnet_keeps_the_logits():
    """Every FocalModulation of timm's focalnet_tiny_srf swapped for the converted block: same logits."""
    torch.manual_seed(0)
    net = timm.create_model("focalnet_tiny_srf")
    mods = [m for m in net.modules() if type(m).__name__ == "FocalModulation"]
    for i, m in enumerate(mods):  # weights far from the init, per module
        randomize(m, seed=i)
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(0.2)
    net = net.double().eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        ref = net(x)
        replaced = replace_modules(net, input_shape=x.shape)
        assert len(replaced) == len(mods) == 12
        assert not any(type(m).__name__ == "FocalModulation" for m in net.modules())
        blocks = [net.get_submodule(p) for p in replaced]
        assert all(
            isinstance(b, AttnLayer) and b.params["layout"] == "channels_first" and not b.training for b in blocks
        )
        out = net(x)
    err = (out - ref).abs().max().item()
    assert err <= 1e-10 * max(1.0, ref.abs().max().item()), err


def test_defaults_are_the_papers():
    m = attndsl.build("focal_modulation", channels=96)
    assert m.f.weight.shape == (96 * 2 + 3, 96) and m.f.bias is not None and m.h.bias is not None
    assert [tuple(m.get_submodule(f"focal_layers.{i}").weight.shape) for i in range(2)] == [
        (96, 1, 3, 3),
        (96, 1, 5, 5),
    ]
    assert not hasattr(m, "norm") and m.proj.bias is not None
    assert m(torch.randn(1, 5, 4, 96)).shape == (1, 5, 4, 96)
    with pytest.raises(ValueError, match="expected"):
        m(torch.randn(1, 96, 5, 4))
    cf = attndsl.build("focal_modulation", channels=96, layout="channels_first")
    assert cf(torch.randn(1, 96, 5, 4)).shape == (1, 96, 5, 4)
