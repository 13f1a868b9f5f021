"""A real install carries the specs: sdist and wheel built with the standard build front end,
the wheel unpacked outside the checkout (what pip does for a pure-Python wheel) and used from
another directory; the registry's lookup order. `.ci/wheel_smoke` does the same through pip
and a fresh venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from attndsl import registry
from attndsl.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p.name for p in (ROOT / "specs").glob("*.yaml"))


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """sdist and wheel of a copy of the source tree (the build writes egg-info beside the sources)."""
    import build  # noqa: F401  (the standard front end, run below as `python -m build`)

    tmp = tmp_path_factory.mktemp("dist")
    src = tmp / "src"
    shutil.copytree(
        ROOT, src, ignore=shutil.ignore_patterns(".git", "__pycache__", "build", "dist", "*.egg-info", ".pytest_cache")
    )
    # --no-isolation: the installed setuptools, no download; the wheel is built from the sdist
    r = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "out"), str(src)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return next((tmp / "out").glob("*.tar.gz")), next((tmp / "out").glob("*.whl"))


def test_wheel_and_sdist_carry_every_spec(dists):
    sdist, wheel = dists
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n.split("/")[-1] for n in names if n.startswith("attndsl/specs/")) == SPECS
    assert "attndsl/grammar.lark" in names and "attndsl/passes/fuse_gate.py" in names
    members = tarfile.open(sdist).getnames()
    top = members[0].split("/")[0]
    assert {f"{top}/specs/{s}" for s in SPECS} <= set(members)
    assert {f"{top}/pyproject.toml", f"{top}/MANIFEST.in", f"{top}/attndsl/grammar.lark"} <= set(members)


def test_installed_wheel_works_from_any_directory(dists, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(dists[1]).extractall(site)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("ATTNDSL_SPEC_PATH", None)
    code = (
        "import attndsl, torch, sys\n"
        "from attndsl.cli import main\n"
        "assert attndsl.__file__.startswith(sys.argv[1]), attndsl.__file__\n"
        "assert len(attndsl.all_specs()) == int(sys.argv[2])\n"
        "assert attndsl.build('cbam', channels=64)(torch.randn(1, 64, 6, 6)).shape == (1, 64, 6, 6)\n"
        "sys.exit(main(['compile', 'ecanet', '-o', 'eca.py']))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(site), str(len(SPECS))], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "class Ecanet" in (cwd / "eca.py").read_text()


def test_user_folders_come_first(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "senet.yaml").write_text((ROOT / "specs" / "senet.yaml").read_text())
    monkeypatch.setenv("ATTNDSL_SPEC_PATH", os.pathsep.join([str(tmp_path / "missing"), str(mine)]))
    assert registry.find_spec("senet") == mine / "senet.yaml"  # a missing folder is skipped, like PATH
    assert registry.find_spec("cbam") == ROOT / "specs" / "cbam.yaml"
    other = tmp_path / "other"
    other.mkdir()
    (other / "senet.yaml").write_text("")
    assert registry.find_spec("senet", extra=[other]) == other / "senet.yaml"
    with pytest.raises(SpecError, match="does not exist"):
        registry.all_specs(extra=[tmp_path / "nope"])


def test_a_foreign_specs_folder_beside_the_package_is_ignored(tmp_path, monkeypatch):
    # an installed attndsl sits in site-packages; a `site-packages/specs` of another project is not ours
    pkg = tmp_path / "site-packages" / "attndsl"
    (pkg / "specs").mkdir(parents=True)
    (tmp_path / "site-packages" / "specs").mkdir()
    monkeypatch.setattr(registry, "_HERE", pkg)
    assert registry.builtin_dir() == pkg / "specs"
    (tmp_path / "site-packages" / "pyproject.toml").write_text("")  # a checkout: its specs/ wins
    assert registry.builtin_dir() == tmp_path / "site-packages" / "specs"
