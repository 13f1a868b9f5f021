"""attndsl blocks inside timm and torchvision models: `layer` (timm's attn_layer protocol) and
`attach` (insertion by module path)."""
from __future__ import annotations

import copy
import io
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
    timm = pytest.importorskip("timm")
    # zero_init_last=False: timm zeroes bn3, which would leave the blocks without a gradient
    make = lambda: timm.create_model("resnet50", block_args=dict(attn_layer=attndsl.layer("cbam")),
                                     pretrained=False, num_classes=5, zero_init_last=False)
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
    code = ("import torch, sys; d = sys.argv[1]\n"
            "m = torch.load(d + '/whole.pt', weights_only=False)\n"
            "assert torch.equal(m(torch.load(d + '/x.pt')), torch.load(d + '/ref.pt'))\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]


def test_timm_has_no_string_registry():
    # timm's get_attn maps its own names by an if-chain: a new string would need patching timm
    timm = pytest.importorskip("timm")
    from timm.layers.create_attn import get_attn
    with pytest.raises(AssertionError, match="Invalid attn module"):
        get_attn("attndsl_cbam")
