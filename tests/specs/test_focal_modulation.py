"""focal_modulation against the reference written from the FocalNet equations and against timm's
FocalModulation (timm.models.focalnet): focal levels, windows, biases, post norm, normalisation,
and the `convert` section loading timm FocalNet weights."""
import pytest
import torch
import timm
from timm.models.focalnet import FocalNet

import attndsl
from attndsl.checkpoints import from_module
from tests.oracle import check_against_reference, randomize
from tests.reference.focal_modulation import FocalModulation, TimmFocalModulation, timm_key_map

SHAPES = [
    {"x": [2, 7, 9, 8]},        # odd, non-square
    {"x": [1, 1, 3, 8]},        # batch 1, a map smaller than the kernels
    {"x": [3, 4, 4, 8]},
]

VARIANTS = [
    {"channels": 8},                                                          # FocalNet-T/S/B (SRF)
    {"channels": 8, "focal_level": 3},                                        # LRF
    {"channels": 8, "focal_level": 3, "focal_window": 5, "use_post_norm": True, "normalize_modulator": True},
    {"channels": 8, "focal_level": 4, "focal_window": 3, "use_post_norm": True, "ln_eps": 1e-6},   # fl4
    {"channels": 8, "focal_level": 1, "focal_window": 1, "focal_factor": 4, "bias": False},
    {"channels": 8, "focal_level": 0},                                        # only the global level
]


@pytest.mark.parametrize("params", VARIANTS)
def test_matches_reference(params):
    check_against_reference("focal_modulation", params, FocalModulation(**params), SHAPES)


@pytest.mark.parametrize("params", VARIANTS)
def test_matches_timm(params):
    ref = TimmFocalModulation(**params)
    check_against_reference("focal_modulation", params, ref, SHAPES, key_map=timm_key_map(ref))


@pytest.mark.parametrize("model,stage", [
    ("focalnet_tiny_srf", 0), ("focalnet_tiny_lrf", 2),
    (dict(depths=(1, 1), embed_dim=16, focal_levels=(3, 4), focal_windows=(5, 3), use_post_norm=True,
          use_post_norm_in_modulation=True, normalize_modulator=True), 1),   # the fl4 form, small
])
def test_timm_weights_convert(model, stage):
    net = timm.create_model(model) if isinstance(model, str) else FocalNet(**model)
    src = net.layers[stage].blocks[0].modulation
    randomize(src)
    src.eval()
    ours = from_module(src).eval()
    assert ours.params["focal_level"] == src.focal_level and ours.params["focal_window"] == src.focal_window
    assert ours.params["use_post_norm"] == src.use_post_norm
    assert ours.params["normalize_modulator"] == src.normalize_modulator
    x = torch.randn(2, 6, 5, src.dim)
    torch.testing.assert_close(ours(x), src(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), atol=1e-5, rtol=1e-4)


def test_defaults_are_the_papers():
    m = attndsl.build("focal_modulation", channels=96)
    assert m.f.weight.shape == (96 * 2 + 3, 96) and m.f.bias is not None and m.h.bias is not None
    assert [tuple(m.get_submodule(f"focal_layers.{i}").weight.shape) for i in range(2)] == [(96, 1, 3, 3), (96, 1, 5, 5)]
    assert not hasattr(m, "norm") and m.proj.bias is not None
