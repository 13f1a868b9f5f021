"""The cost report: FLOPs against torch's FlopCounterMode, hand counts, memory, the CLI."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import attndsl
from attndsl.costs import FAMILIES, profile
from attndsl.registry import all_specs

ROOT = Path(__file__).resolve().parents[1]
# matrix products, convolutions (module and per-sample kernels), SDPA, covariance, affine grids
COUNTER_SPECS = [
    "senet",
    "cbam",
    "non_local",
    "sknet",
    "vit",
    "danet",
    "condconv",
    "dynamic_conv",
    "gsopnet",
    "stn",
    "resnest",
    "glore",
]


def _module_total(name) -> int:
    """FlopCounterMode over one whole forward of the built module, on the CPU with real data."""
    spec = attndsl.pipeline.load(name)
    gm = attndsl.build(name, **spec.example.get("params", {})).eval()
    xs = [torch.rand(spec.example["inputs"][k]) for k in spec.inputs]
    with FlopCounterMode(display=False) as m, torch.no_grad():
        gm(*xs)
    return m.get_total_flops()


@pytest.mark.parametrize("name", COUNTER_SPECS)
def test_own_count_equals_flop_counter(name):
    p = profile(name, device="cpu")
    assert p.torch_flops == _module_total(name) > 0
    counted = [n for n in p.nodes if n.torch]
    assert counted and all(n.own == n.torch for n in counted), [(n.name, n.own, n.torch) for n in counted]
    # torch counts multiply-accumulate nodes only, and all of them but affine grids and the CPU's fused
    # attention kernel (aten._scaled_dot_product_flash_attention_for_cpu), which its counter does not know
    for n in p.nodes:
        mac = bool(n.family and FAMILIES[n.family][1] and n.own > 0)
        assert (n.torch > 0) == mac or (n.family in ("attention", "affine_grid") and n.torch == 0), n
    meta = profile(name)  # on meta attention decomposes into products torch counts
    assert all(n.torch == n.own for n in meta.nodes if n.family and FAMILIES[n.family][1] and n.family != "affine_grid")
    assert meta.flops == p.flops


def test_every_spec_is_counted_and_agrees_on_meta():
    for name in all_specs():
        p = profile(name)
        assert p.device == "meta"
        assert not p.uncounted, (name, p.uncounted)
        assert all(n.own == n.torch for n in p.nodes if n.torch), name
        assert p.flops > 0 and p.peak_bytes > 0, name


def test_senet_by_hand():
    b, c, h, w, r = 2, 64, 56, 56, 16
    p = profile("senet", {"x": [b, c, h, w]}, channels=c, reduction=r)
    hw, hid = h * w, c // r
    linear = 2 * b * c * hid * 2  # fc1 and fc2, biases not counted
    own = b * c * hw + b * hid + b * c + b * c * hw  # mean, relu, sigmoid, gate product
    assert p.torch_flops == linear
    assert p.flops == linear + own
    assert p.macs == linear // 2
    assert p.n_params == 2 * c * hid + hid + c
    # forward peak: the output [b, c, h, w] and the gate [b, c] alive together (float32)
    assert p.peak_bytes == 4 * (b * c * hw + b * c)


def test_fusing_a_gate_changes_no_count():
    fused = profile("senet", channels=32)
    plain = profile("senet", channels=32, passes=[])
    assert fused.flops == plain.flops and fused.macs == plain.macs
    assert "gate" in fused.by_family() and "gate" not in plain.by_family()


def test_attention_fusion_keeps_the_products():
    fused, plain = profile("non_local"), profile("non_local", passes=[])
    mm = lambda p: sum(n.flops for n in p.nodes if n.family in ("attention", "matmul", "linear"))  # noqa: E731
    assert mm(fused) == mm(plain)
    # the fused kernel's softmax and scaling are not counted by torch: the only difference
    assert plain.flops - fused.flops == plain.by_family()["softmax"] + plain.by_family()[
        "elementwise"
    ] - fused.by_family().get("elementwise", 0)


def test_built_module_and_meta_match_cpu():
    block = attndsl.build("cbam", channels=64)
    a, b = attndsl.profile(block, {"x": [2, 64, 7, 9]}), attndsl.profile("cbam", {"x": [2, 64, 7, 9]}, device="cpu")
    assert (a.flops, a.macs, a.peak_bytes, a.saved_bytes, a.n_params) == (
        b.flops,
        b.macs,
        b.peak_bytes,
        b.saved_bytes,
        b.n_params,
    )
    assert next(block.parameters()).device.type == "cpu"  # the built module is left alone


def test_saved_bytes_grow_with_the_batch():
    one, four = profile("cbam", {"x": [1, 64, 8, 8]}), profile("cbam", {"x": [4, 64, 8, 8]})
    assert four.saved_bytes == pytest.approx(4 * one.saved_bytes, rel=0.05)
    assert four.flops > 3 * one.flops


def test_bad_shapes_are_attndsl_errors():
    with pytest.raises(attndsl.AttnDSLError, match="axis 1 of input `x` is 3"):
        profile("senet", {"x": [1, 3, 8, 8]}, channels=64)
    with pytest.raises(attndsl.AttnDSLError, match="has no input `y`"):
        profile("senet", {"y": [1, 3]})
    with pytest.raises(attndsl.AttnDSLError, match="5 axes"):
        profile("tam", {"x": [1, 64, 8]})


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "attndsl", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )


def test_cli_profile():
    r = _cli("profile", "senet", "-p", "channels=256", "--shape", "x=1,256,56,56")
    assert r.returncode == 0, r.stderr
    p = profile("senet", {"x": [1, 256, 56, 56]}, channels=256)
    assert f"FLOPs: {p.flops:,}" in r.stdout and f"MACs: {p.macs:,}" in r.stdout
    assert "learned parameters: 8,464" in r.stdout and "peak activation memory" in r.stdout
    bad = _cli("profile", "senet", "--shape", "x=1,two")
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
