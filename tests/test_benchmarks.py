"""benchmarks/realsize.py runs end to end on two layers at --quick sizes and reports what it measured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_realsize_quick_runs_two_layers_against_timm():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "realsize.py"),
            "--quick",
            "--no-compile",
            "--only",
            "senet,non_local",
            "--threads",
            "1",
            "--markdown",
            "--no-progress",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "1 threads" in out and "timm 1.0" in out
    for mode in ("eval forward", "train forward+backward"):
        assert out.count(f"### {mode}, x = ") == 2, out  # both feature-map shapes
    rows = [li for li in out.splitlines() if li.startswith("| senet ") or li.startswith("| non_local ")]
    assert len(rows) == 8, out
    for li in rows:
        cells = [c.strip() for c in li.strip("|").split("|")]
        assert cells[1] == "timm"
        times, mem = [float(c) for c in cells[2:8]], [float(c) for c in cells[8:12]]
        assert all(t > 0 for t in times), li
        assert all(m > 0 for m in mem), li  # the output alone is fresh memory
    assert len(re.findall(r"geomean over the 2 timm layers: attndsl/timm eager \d+\.\d\d", out)) == 4
    assert "non_local at N=144: one N x N float32 map" in out


def test_realsize_quick_runs_the_stage_blocks_in_their_own_table():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "realsize.py"), "--quick", "--no-compile", "--threads", "1"]
    cmd += ["--only", "maxvit_block,pvt_v2", "--markdown", "--no-progress"]  # pvt_v2: both of its rows
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    for mode in ("eval forward", "train forward+backward"):
        assert out.count(f"### timm blocks at their backbones' stage sizes, {mode} (") == 1, out
    assert "### eval forward, x = " not in out  # no ResNet-shape table without a ResNet-shape layer
    rows = [li for li in out.splitlines() if li.startswith(("| maxvit_block ", "| pvt_v2_s"))]
    assert len(rows) == 6, out
    for li in rows:
        cells = [c.strip() for c in li.strip("|").split("|")]
        assert cells[1] == "timm" and cells[2] in ("2x14x14x64", "2x16x16x64", "2x8x8x320"), li
        times, mem = [float(c) for c in cells[3:9]], [float(c) for c in cells[9:13]]
        assert all(t > 0 for t in times) and all(m > 0 for m in mem), li
    assert len(re.findall(r"geomean over the 3 timm blocks: attndsl/timm eager \d+\.\d\d", out)) == 2
    assert "- pvt_v2_s3: pvt_v2_b2 stage 3 (320 ch, 14x14 tokens)" in out


class _Seen(Exception):
    pass


@pytest.mark.parametrize(
    "row",
    ["maxvit_block", "maxvit_grid", "pvt_v2_s1", "pvt_v2_s3", "efficientvit", "focal_modulation", "outlook_attention"],
)
def test_stage_blocks_are_their_backbones(row):
    """Each stage row's timm module is configured as the one at its place in the timm model (224 input, meta
    device: no weights, no arithmetic), and the row's map is the one that module sees there."""
    import timm
    import torch

    from benchmarks.realsize import _stage_layers

    lay = _stage_layers()[row]
    model = timm.create_model(lay.timm_model, device="meta").eval()
    theirs = model.get_submodule(lay.timm_path)
    other, ours = lay.build()
    assert repr(ours) == repr(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    host = lay.timm_path.rsplit(".", 1)[0] if lay.spec == "maxvit" else lay.timm_path  # maxvit: the partitioning
    if lay.spec == "maxvit":
        part = model.get_submodule(host)
        assert part.partition_size == other.size and part.partition_block == (lay.convert["partition"] == "block")
    seen = []

    def stop(m, args):
        seen.append(tuple(args[0].shape))
        raise _Seen

    model.get_submodule(host).register_forward_pre_hook(stop)
    with pytest.raises(_Seen), torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    b, *rest = lay.shape
    want = (1, rest[0] * rest[1], rest[2]) if lay.spec == "pvt_v2" else (1, *rest)  # pvt_v2: timm's tokens
    assert seen == [want]
