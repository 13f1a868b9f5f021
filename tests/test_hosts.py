"""attndsl blocks inside timm and torchvision models: `layer` (timm's attn_layer protocol) and
`attach` (insertion by module path)."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import attndsl
from attndsl.errors import AttnDSLError
from attndsl.hosts import AttnLayer

ROOT = Path(__file__).resolve().parent.parent


# --- layer -----------------------------------------------------------------------------------------


def test_layer_is_a_cached_picklable_class_with_the_built_keys():
    cls = attndsl.layer("cbam", reduction=8)
    assert isinstance(cls, type) and issubclass(cls, AttnLayer) and cls is attndsl.layer("cbam", reduction=8)
    assert pickle.loads(pickle.dumps(cls)) is cls
    m = cls(64)
    torch.manual_seed(0)
    ref = attndsl.build("cbam", channels=64, reduction=8)
    assert list(m.state_dict()) == list(ref.state_dict())
    m.load_state_dict(ref.state_dict())
    x = torch.randn(2, 64, 6, 7)
    assert torch.equal(m(x), ref(x))
    assert m.params["reduction"] == 8 and m.params["channels"] == 64
    m.eval(), ref.eval()
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert torch.equal(clone(x), ref(x))


def test_layer_takes_timm_keywords():
    m = attndsl.layer("senet")(64, rd_ratio=1 / 8, device="meta", dtype=torch.float64)
    assert m.params["reduction"] == 8 and m.fc1.weight.device.type == "meta" and m.fc1.weight.dtype == torch.float64
    assert attndsl.layer("gcnet")(64, rd_ratio=0.25).params["ratio"] == 0.25
    ca = attndsl.layer("coordinate_attention")(64, act_layer=nn.ReLU)
    assert ca.params["activation"] == "relu"
    assert attndsl.layer("senet")(64, act_layer=None, rd_channels=None).params["reduction"] == 16
    with pytest.raises(AttnDSLError, match="cannot take timm's `act_layer`.*fixed by the spec"):
        attndsl.layer("senet")(64, act_layer=nn.SiLU)
    with pytest.raises(AttnDSLError, match="1/0.3 is not an integer"):
        attndsl.layer("senet")(64, rd_ratio=0.3)
    with pytest.raises(AttnDSLError, match="no such parameter"):
        attndsl.layer("ecanet")(64, bogus=1)
    with pytest.raises(AttnDSLError, match="has no parameter `reducton`"):
        attndsl.layer("senet", reducton=4)
    with pytest.raises(AttnDSLError, match="no `channels` parameter"):
        attndsl.layer("sta_lstm")


def test_timm_resnet50_with_cbam_builds_trains_saves_and_loads(tmp_path):
    import timm

    # zero_init_last=False: timm zeroes bn3, which would leave the blocks without a gradient
    def make():
        return timm.create_model(
            "resnet50",
            block_args=dict(attn_layer=attndsl.layer("cbam")),
            pretrained=False,
            num_classes=5,
            zero_init_last=False,
        )

    torch.manual_seed(0)
    model = make()
    assert sum(isinstance(m, AttnLayer) for m in model.modules()) == 16
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([1, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.layer1[0].se.fc1.weight.detach().clone()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    assert not torch.equal(before, model.layer1[0].se.fc1.weight)
    model.eval()
    ref = model(x)
    torch.save(model, tmp_path / "whole.pt")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    again = make().eval()
    again.load_state_dict(torch.load(tmp_path / "sd.pt"))
    assert torch.equal(again(x), ref)
    # the whole pickled model loads in a fresh process that never called attndsl.layer
    torch.save(x, tmp_path / "x.pt")
    torch.save(ref, tmp_path / "ref.pt")
    code = (
        "import torch, sys; d = sys.argv[1]\n"
        "m = torch.load(d + '/whole.pt', weights_only=False)\n"
        # close, not bitwise: another process may align buffers otherwise, and CPU kernels round by it
        "torch.testing.assert_close(m(torch.load(d + '/x.pt')), torch.load(d + '/ref.pt'))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr[-2000:]


def test_timm_has_no_string_registry():
    # timm's get_attn maps its own names by an if-chain: a new string would need patching timm
    from timm.layers.create_attn import get_attn

    with pytest.raises(AssertionError, match="Invalid attn module"):
        get_attn("attndsl_cbam")


# --- attach ----------------------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.conv = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.conv(self.body(x)).mean((2, 3)))


def test_attach_after_before_replace_in_order_and_by_regex():
    torch.manual_seed(0)
    net = Net().eval()
    old = net.state_dict()
    x = torch.randn(2, 3, 12, 12)
    added = attndsl.attach(net, "senet", at="body.1", reduction=4)  # after the BN, inside a Sequential
    assert added == ["body_1_senet"]  # held by Net, not by the Sequential
    more = attndsl.attach(net, "ecanet", at="re:body\\.1", where="after")
    attndsl.attach(net, "gct", at="conv", where="before")
    se, eca, gct = net.body_1_senet, net.body_1_ecanet, net.conv_gct
    assert se.params["channels"] == 16 and gct.params["channels"] == 16 and more == ["body_1_ecanet"]
    with torch.no_grad():
        # .forward: the modules without their hooks
        h = eca(se(net.body[1].forward(net.body[0](x))))  # attached first, applied first
        want = net.head(net.conv.forward(gct(net.body[2](h))).mean((2, 3)))
        assert torch.equal(net(x), want)
    missing, unexpected = net.load_state_dict(old, strict=False)
    assert unexpected == [] and set(missing) == {k for k in net.state_dict() if k not in old}
    assert all(k.split(".")[0] in ("body_1_senet", "body_1_ecanet", "conv_gct") for k in missing)
    # the model with its hooks deep-copies and pickles
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert torch.equal(clone(x), net(x))
    # replace: the block takes the module's place and path
    assert attndsl.attach(net, "simam", at="body.2", where="replace") == ["body.2"]
    assert type(net.body[2]).__name__ == "SimamLayer" and net(x).shape == (2, 4)


def test_attach_errors():
    net = Net()
    with pytest.raises(AttnDSLError, match="no module path matches `bdy.1`"):
        attndsl.attach(net, "senet", at="bdy.1")
    with pytest.raises(AttnDSLError, match="where must be one of"):
        attndsl.attach(net, "senet", at="conv", where="afterwards")
    # psanet's feat_size fixes the map it takes, and no input size names it: the block's own check refuses
    with pytest.raises(AttnDSLError, match=r"cannot take the host's .*expected \[B, 32, 59, 59\] \(feat_size"):
        attndsl.attach(net, "psanet", at="conv", where="after")
    # vit's image_size is read off the host, and the block then changes the host's shape
    with pytest.raises(AttnDSLError, match=r"`vit` at `conv` turns \[1, 32, 112, 112\] into \[1, 50, 768\]"):
        attndsl.attach(net, "vit", at="conv", where="after")
    with pytest.raises(AttnDSLError, match=r"turns \[1, 16, 12, 12\] into \[1, 17, 16\], the host needs"):
        attndsl.attach(
            net,
            "vit",
            at="conv",
            where="before",
            input_shape=(1, 3, 12, 12),
            image_size=12,
            patch_size=3,
            hidden_size=16,
            num_heads=2,
            mlp_dim=8,
            depth=1,
        )
    with pytest.raises(AttnDSLError, match="attach places blocks of one input"):
        attndsl.attach(net, "attention_gate", at="conv")
    with pytest.raises(AttnDSLError, match="dry run of .* failed"):
        attndsl.attach(net, "senet", at="conv", input_shape=(1, 5, 8, 8))
    assert not any(k.endswith("_senet") for k, _ in net.named_children())


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_resnet50_parameter_counts_against_the_papers():
    import torchvision as tv

    base = _count(tv.models.resnet50())
    assert base == 25_557_032  # ResNet-50: 25.56 M (CBAM paper, Table 1)
    counts = {}
    for spec in ("senet", "cbam", "ecanet"):
        m = tv.models.resnet50()
        # every bottleneck's residual branch: after bn3, before the residual add
        assert len(attndsl.attach(m, spec, at="layer*.*.bn3")) == 16
        counts[spec] = _count(m)
    assert counts["senet"] == 28_088_024 and round(counts["senet"] / 1e6, 2) == 28.09  # SE-ResNet-50: 28.09 M
    assert counts["cbam"] == 28_089_624 and round(counts["cbam"] / 1e6, 2) == 28.09  # CBAM-ResNet-50: 28.09 M
    # ECA: the paper's adaptive k gives 5, 5, 5, 7 per stage (86 parameters); the released
    # ECA-ResNet-50 uses k = 3 in the first stage: the paper's 80 parameters
    assert counts["ecanet"] - base == 86
    m = tv.models.resnet50()
    attndsl.attach(m, "ecanet", at="layer1.*.bn3", k_size=3)
    attndsl.attach(m, "ecanet", at="layer[234].*.bn3")
    assert _count(m) - base == 80


def test_attach_to_timm_models_without_attn_layer():
    import timm

    torch.manual_seed(0)
    m = timm.create_model("convnext_atto", pretrained=False, num_classes=10)
    old = m.state_dict()
    added = attndsl.attach(m, "ecanet", at="stages.*.blocks.*.conv_dw")  # input size from pretrained_cfg
    assert len(added) == 12 and added[0] == "stages.0.blocks.0.conv_dw_ecanet"
    assert {p.split(".")[1]: m.get_submodule(p).params["channels"] for p in added} == {
        "0": 40,
        "1": 80,
        "2": 160,
        "3": 320,
    }
    x = torch.randn(2, 3, 64, 64)
    nn.functional.cross_entropy(m(x), torch.tensor([1, 2])).backward()
    assert m.get_submodule(added[0]).conv.weight.grad.abs().sum() > 0
    assert m.load_state_dict(old, strict=False).unexpected_keys == []
    mb = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10)
    added = attndsl.attach(mb, "coordinate_attention", at="blocks.*.0", where="before")
    assert added[0] == "blocks_0_0_coordinate_attention" and mb(x).shape == (2, 10)


def test_top_level_sequential_holds_blocks_on_the_module_and_compiles_whole():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), attndsl.layer("senet", reduction=4)(16)).eval()
    assert attndsl.attach(m, "ecanet", at="0") == ["0.ecanet"]  # a Sequential root: the conv holds it
    x = torch.randn(2, 3, 8, 8)
    ref = m(x)
    assert torch.equal(m[1](m[0].ecanet(m[0].forward(x))), ref)
    compiled = torch.compile(m, fullgraph=True)  # hooks and layer forwards trace whole
    torch.testing.assert_close(compiled(x), ref)
    with pytest.raises(AttnDSLError, match="no module at or above `0` can hold the block"):
        attndsl.attach(nn.Sequential(nn.Sequential(nn.Conv2d(3, 3, 1))), "senet", at="0", reduction=1)
