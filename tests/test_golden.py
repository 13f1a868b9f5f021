"""Golden IR: the text of the IR after the frontend and after each default pass, per spec.

Regenerate after an intended change with `ATTNDSL_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py`
and review the diff like code.
"""

import os
from pathlib import Path

import pytest

from attndsl.passes import DEFAULT_PIPELINE
from attndsl.pipeline import compile_spec

GOLDEN = Path(__file__).parent / "golden"
CASES = {"senet": {"channels": 32}, "cbam": {"channels": 32}, "non_local": {"channels": 16}, "sknet": {"channels": 64}}


def render(name, params) -> str:
    c = compile_spec(name, params, check=True, dump=("all",))
    parts = []
    for stage in ["frontend"] + DEFAULT_PIPELINE:
        stats = c.stats.get(stage)
        head = f"// after {stage}" + (f" {stats}" if stats else "")
        parts.append(head + "\n" + c.dumps[stage])
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_ir(name):
    path = GOLDEN / f"{name}.ir"
    text = render(name, CASES[name])
    if os.environ.get("ATTNDSL_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with ATTNDSL_UPDATE_GOLDEN=1"
    assert text == path.read_text()
