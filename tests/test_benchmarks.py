"""benchmarks/realsize.py runs end to end on two layers at --quick sizes and reports what it measured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
