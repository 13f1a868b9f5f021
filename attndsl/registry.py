"""Find specs by name or path.

A name (`"cbam"`) is looked up in the directories of `ATTNDSL_SPEC_PATH`
(os.pathsep-separated) and then in the `specs/` folder of this checkout.
Entry points: `spec_dirs`, `find_spec`, `all_specs`.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import SpecError, did_you_mean

_HERE = Path(__file__).resolve().parent


def spec_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("ATTNDSL_SPEC_PATH", "").split(os.pathsep) if p]
    for cand in (_HERE.parent / "specs", _HERE / "specs"):
        if cand.is_dir():
            dirs.append(cand)
    return dirs


def all_specs() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for d in spec_dirs():
        for p in sorted(d.glob("*.yaml")):
            out.setdefault(p.stem, p)
    return out


def find_spec(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        if not p.is_file():
            raise SpecError(f"no spec file `{name_or_path}`")
        return p
    specs = all_specs()
    if str(name_or_path) in specs:
        return specs[str(name_or_path)]
    raise SpecError(f"no spec named `{name_or_path}`",
                    hint=did_you_mean(str(name_or_path), specs) or "`attndsl list` shows the specs")
