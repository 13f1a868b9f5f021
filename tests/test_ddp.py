"""Multi-process training with attndsl blocks: examples/train_ddp.py under torchrun with 2 CPU
processes (gloo): gradients and parameters agree across ranks after every step; a block with
parameters that get no gradient (EMANet) says so, and DDP needs find_unused_parameters for it;
FSDP2 (fully_shard) trains to the same parameters as DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import attndsl

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "train_ddp.py"


# a worker that std::terminate()s at process teardown (gloo's threads, seen only on a heavily loaded machine)
TEARDOWN_ABORT = "terminate called without an active exception"


def torchrun(tmp_path, *args, timeout=240, retry=True):
    """Two workers of examples/train_ddp.py; one rerun when a worker aborted at teardown (TEARDOWN_ABORT)."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(EXAMPLE),
            "--out",
            str(out),
            "--steps",
            "2",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if r.returncode != 0 and retry and TEARDOWN_ABORT in r.stderr:
        return torchrun(tmp_path / "rerun", *args, timeout=timeout, retry=False)
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))] if out.is_dir() else []
    if r.returncode != 0 and TEARDOWN_ABORT in r.stderr and len(reports) == 2:
        # both workers finished and wrote their reports; the abort came in process teardown, after the work
        r = subprocess.CompletedProcess(r.args, 0, r.stdout, r.stderr)
    return r, reports


def test_blocks_report_parameters_without_gradient():
    assert attndsl.layer("emanet")(16).unused_parameters == ["conv1.weight", "conv1.bias"]  # no-grad EM
    assert attndsl.layer("emanet", stop_em_grad=False)(16).unused_parameters == []  # unrolled EM
    for spec in ("senet", "cbam", "non_local", "resnest"):
        assert attndsl.layer(spec)(16).unused_parameters == [], spec
    assert attndsl.layer("sknet", groups=4)(16).unused_parameters == []


def test_ddp_two_processes_keep_gradients_and_parameters_in_sync(tmp_path):
    r, reports = torchrun(tmp_path, "--specs", "senet,cbam")
    assert r.returncode == 0, r.stderr[-3000:]
    assert [rep["rank"] for rep in reports] == [0, 1] and all(rep["backend"] == "gloo" for rep in reports)
    assert reports[0]["losses"] != reports[1]["losses"]  # each rank trained on its own data...
    for rep in reports:  # ...and DDP averaged the gradients
        assert rep["grad_spread"] == 0.0 and rep["param_spread"] == 0.0
        assert rep["find_unused_parameters"] is False
    (tmp_path / "ddp.json").write_text(json.dumps(reports[0]))


def test_ddp_with_emanet_needs_find_unused_parameters(tmp_path):
    r, reports = torchrun(tmp_path, "--specs", "senet,emanet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert reports[0]["find_unused_parameters"] is True
    assert reports[0]["unused"] == ["4.conv1.weight", "4.conv1.bias", "9.conv1.weight", "9.conv1.bias"]
    assert all(rep["grad_spread"] == 0.0 and rep["param_spread"] == 0.0 for rep in reports)
    r, _ = torchrun(tmp_path / "off", "--specs", "senet,emanet", "--find-unused", "off")
    assert r.returncode != 0 and "find_unused_parameters" in r.stderr


def test_fsdp2_fully_shard_trains_like_ddp(tmp_path):
    r, ddp = torchrun(tmp_path / "ddp", "--specs", "senet,cbam")
    assert r.returncode == 0, r.stderr[-3000:]
    r, fsdp = torchrun(tmp_path / "fsdp", "--specs", "senet,cbam", "--fsdp")
    if r.returncode != 0 and "fully_shard" in r.stderr and "not supported" in r.stderr:
        pytest.fail("fully_shard refused CPU/gloo: " + r.stderr[-500:])
    assert r.returncode == 0, r.stderr[-3000:]
    assert all(rep["fsdp"] and rep["param_spread"] == 0.0 for rep in fsdp)
    assert fsdp[0]["losses"][0] == pytest.approx(ddp[0]["losses"][0], rel=1e-6)
    assert fsdp[0]["param_checksum"] == pytest.approx(ddp[0]["param_checksum"], rel=1e-5)
