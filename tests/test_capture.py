"""Attention maps: `maps:` in specs, `attndsl.capture` on models holding several blocks."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attndsl
from attndsl.attnmaps import compile_with_maps, map_names
from attndsl.errors import SpecError
from attndsl.pipeline import load
from attndsl.registry import all_specs
from tests.helpers import spec_text

# specs whose attention is made inside a user function or is a hard location (an input and an output), and
# efficientvit, whose linear attention never forms an N x N map (relu(q) (relu(k)^T v), normalised)
NO_MAPS = {"glimpse", "ram", "psanet", "sca_cnn", "efficientvit"}


def _randomise(model):
    """Non-trivial batch-norm statistics and affine parameters, so eval mode tests something."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


def test_every_spec_names_its_maps_or_is_listed():
    for name in all_specs():
        s = load(name)
        names = map_names(s)
        assert bool(names) != (name in NO_MAPS), name
        if names:
            _, present = compile_with_maps(s, s.example.get("params") or {})
            assert present, name
    # every channel and spatial gate and every softmax attention of the named families has a map
    for name in (
        "senet",
        "ecanet",
        "cbam",
        "scse",
        "bam",
        "srm",
        "gct",
        "simam",
        "non_local",
        "danet",
        "vit",
        "sknet",
        "resnest",
        "triplet_attention",
        "coordinate_attention",
    ):
        assert map_names(name), name


def test_senet_map_is_the_excitation():
    torch.manual_seed(0)
    block = attndsl.build("senet", channels=32).eval()
    x = torch.randn(3, 32, 7, 5)
    with attndsl.capture(block) as maps:
        y = block(x)
    s = torch.sigmoid(block.fc2(torch.relu(block.fc1(x.mean((2, 3))))))
    assert list(maps) == [""] and list(maps[""]) == ["s"]
    torch.testing.assert_close(maps[""]["s"], s)
    torch.testing.assert_close(y, x * s[:, :, None, None])


def test_cbam_and_non_local_in_one_model():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        attndsl.build("cbam", channels=16, reduction=4),
        nn.Sequential(nn.ReLU(), attndsl.build("non_local", channels=16)),
        attndsl.build("senet", channels=16, reduction=4),
    )
    _randomise(model).eval()
    x = torch.randn(2, 3, 8, 10)
    plain = model(x)
    with attndsl.capture(model) as maps:
        out = model(x)
    torch.testing.assert_close(out, plain)
    assert sorted(maps) == ["1", "2.1", "3"]
    assert sorted(maps["1"]) == ["s_c", "s_s"] and list(maps["2.1"]) == ["a"]

    # cbam, written out from its paper and official code (pools avg, max; spatial pools in (max, mean) order)
    cb, h = model[1], model[0](x)
    mlp = lambda v: cb.fc2(torch.relu(cb.fc1(v)))  # noqa: E731
    s_c = torch.sigmoid(mlp(h.mean((2, 3))) + mlp(h.amax((2, 3))))
    x1 = h * s_c[:, :, None, None]
    s_s = torch.sigmoid(cb.bn(cb.conv(torch.cat([x1.amax(1, keepdim=True), x1.mean(1, keepdim=True)], 1))))
    torch.testing.assert_close(maps["1"]["s_c"], s_c)
    torch.testing.assert_close(maps["1"]["s_s"], s_s)
    assert s_s.shape == (2, 1, 8, 10)

    # non_local: the map the default passes fuse into scaled_dot_product_attention
    nl, u = model[2][1], torch.relu(x1 * s_s)
    assert any(n.target is F.scaled_dot_product_attention for n in nl.graph.nodes)
    uf = u.flatten(2).transpose(1, 2)
    up = F.max_pool2d(u, 2).flatten(2).transpose(1, 2)
    a = torch.softmax(nl.theta(uf) @ nl.phi(up).transpose(1, 2) * 8**-0.5, dim=-1)
    torch.testing.assert_close(maps["2.1"]["a"], a)
    assert a.shape == (2, 80, 20)


def test_capture_costs_nothing_when_off():
    block = _randomise(attndsl.build("cbam", channels=16)).eval()
    code, x = block.code, torch.randn(2, 16, 6, 6)
    before = block(x)
    with pytest.raises(RuntimeError, match="inside"):
        with attndsl.capture(block):
            assert "forward" in vars(block)
            raise RuntimeError("inside")
    assert "forward" not in vars(block) and block.code == code
    assert not (block._forward_hooks or block._forward_pre_hooks)
    assert torch.equal(block(x), before)
    # a block with no maps is not touched at all
    plain = attndsl.build("cbam", channels=16, passes=[])
    with attndsl.capture(nn.Sequential(plain)) as maps:
        plain(x)
    assert "forward" not in vars(plain) and list(maps) == ["0"]


def test_training_mode_and_gradients_through_maps():
    torch.manual_seed(2)
    a = attndsl.build("cbam", channels=16, reduction=4).train()
    b = copy.deepcopy(a)
    x = torch.randn(4, 16, 5, 5)
    ya = a(x)
    with attndsl.capture(b, detach=False) as maps:
        yb = b(x)
    torch.testing.assert_close(ya, yb)
    # batch norm's running statistics moved once, as without capture
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], msg=k)
    maps[""]["s_s"].sum().backward()
    assert b.conv.weight.grad is not None and b.fc1.weight.grad is not None


def test_fused_gate_spec_maps():
    torch.manual_seed(3)
    block = attndsl.build("gct", channels=8).eval()
    with torch.no_grad():
        block.gamma.copy_(torch.randn(8))
        block.beta.copy_(torch.randn(8))
    x = torch.randn(2, 8, 4, 4)
    with attndsl.capture(block) as maps:
        y = block(x)
    a = maps[""]["a"]
    torch.testing.assert_close(y, x * a[:, :, None, None])
    assert a.shape == (2, 8) and not torch.allclose(a, torch.ones_like(a))


def test_bad_maps_are_spec_errors(tmp_path):
    for maps, msg in (
        ("[nope]", "map `nope` is not a value"),
        ('"s"', "must list names"),
        ("[s, s]", "twice"),
        ("[off]", "quote"),
    ):
        p = tmp_path / "inline.yaml"
        p.write_text(
            spec_text("y = x * s", g="s = sigmoid(mean(x, dims=spatial, keepdim=true))").replace(
                "outputs:", f"maps: {maps}\noutputs:"
            )
        )
        block = attndsl.build(str(p))
        with pytest.raises(SpecError, match=msg) as e:
            with attndsl.capture(block):
                pass
        assert "inline.yaml:" in e.value.render() and "forward" not in vars(block)


def _example():
    import runpy
    from pathlib import Path

    return runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "attention_maps.py"))


def test_example_maps_find_like_pixels():
    """The example's model on a synthetic picture: two patches of one colour on a plain ground."""
    ex = _example()
    f = torch.zeros(1, 3, 24, 32)
    f[:, :, :] = torch.tensor([0.2, -0.3, 0.1])[:, None, None]
    for r, c in ((2, 2), (14, 20)):
        f[:, :, r : r + 8, c : c + 8] = torch.tensor([2.0, 1.5, -1.0])[:, None, None]
    maps = ex["attention_maps"](f, query=(5, 5))
    nl = maps["non_local"]  # keys on the 2x2-pooled grid [12, 16]
    inside = nl[1:5, 1:5].sum() + nl[7:11, 10:14].sum()
    assert nl.shape == (12, 16) and inside > 0.95 and nl[1:5, 1:5].sum() > 0.3 and nl[7:11, 10:14].sum() > 0.3
    s = maps["simam"]  # the rare patches stand out from the ground
    assert s.shape == (24, 32) and s[2:10, 2:10].mean() > s[0:2, 12:20].mean() + 0.1


def test_example_renders_the_photograph(tmp_path):
    import matplotlib  # noqa: F401  (the example draws with them; both are in the test extra)
    import skimage  # noqa: F401

    out = _example()["main"](tmp_path / "maps.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_block_buffers_replaced_after_a_first_capture():
    """The block's own buffers (fcanet's DCT basis) are re-read on each call: `.to()` or an assignment
    replaces them with new tensors."""
    block = attndsl.build("fcanet", channels=16).eval()
    name = next(n for n, _ in block.named_buffers() if "." not in n)
    x = torch.randn(2, 16, 7, 7)
    with attndsl.capture(block):
        block(x)
    setattr(block, name, torch.rand_like(getattr(block, name)))
    plain = block(x)
    with attndsl.capture(block) as maps:
        y = block(x)
    torch.testing.assert_close(y, plain)
    block.to(torch.float64)
    with attndsl.capture(block) as maps:
        y = block(x.double())
    torch.testing.assert_close(y, block(x.double()))
    assert maps[""]["s"].dtype == torch.float64
