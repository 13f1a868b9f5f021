"""Find specs by name or path.

A name (`"cbam"`) is looked up, first match wins, in: folders passed as `extra`, the folders of
`ATTNDSL_SPEC_PATH` (os.pathsep-separated), then the specs that ship with attndsl: `specs/` of a source checkout, or the
`attndsl/specs` data package of an installed wheel. A path (`my/block.yaml`) is used as is.
Entry points: `spec_dirs`, `find_spec`, `all_specs`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SpecError, did_you_mean

_HERE = Path(__file__).resolve().parent


def builtin_dir() -> Path | None:
    """The folder of the shipped specs: the checkout's `specs/`, else the installed package data."""
    # `specs/` beside the package counts only in our own checkout, never in a site-packages
    # that happens to hold some other `specs` folder
    checkout = _HERE.parent / "specs"
    if checkout.is_dir() and (_HERE.parent / "pyproject.toml").is_file():
        return checkout
    installed = _HERE / "specs"
    return installed if installed.is_dir() else None


def spec_dirs(extra=()) -> list[Path]:
    dirs = [Path(p) for p in extra]
    for d in dirs:
        if not d.is_dir():
            raise SpecError(f"spec folder `{d}` does not exist")
    # like PATH, a folder of ATTNDSL_SPEC_PATH that is missing is skipped
    dirs += [Path(p) for p in os.environ.get("ATTNDSL_SPEC_PATH", "").split(os.pathsep) if p and Path(p).is_dir()]
    shipped = builtin_dir()
    return dirs + ([shipped] if shipped else [])


def all_specs(extra=()) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for d in spec_dirs(extra):
        for p in sorted(d.glob("*.yaml")):
            out.setdefault(p.stem, p)
    return out


def find_spec(name_or_path: str | os.PathLike, extra=()) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        if not p.is_file():
            raise SpecError(f"no spec file `{name_or_path}`")
        return p
    specs = all_specs(extra)
    if str(name_or_path) in specs:
        return specs[str(name_or_path)]
    raise SpecError(
        f"no spec named `{name_or_path}`",
        hint=did_you_mean(str(name_or_path), specs) or "`attndsl list` shows the specs",
    )
