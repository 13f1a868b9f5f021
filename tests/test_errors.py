"""Broken specs in tests/broken/: each gives file:line:col, the message, the source line with a caret, a hint.

The CLI prints the error without a traceback, exits 2, and leaves no output file behind.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from attndsl.errors import AttnDSLError
from attndsl.pipeline import compile_spec

BROKEN = Path(__file__).parent / "broken"

# file, line, col, message fragment, hint fragment (None: no hint expected)
CASES = [
    ("syntax", 12, 41, "unexpected end of program", "closing bracket is missing"),
    ("unknown_op", 12, 7, "unknown op `sigmoidd`", "did you mean `sigmoid`?"),
    ("undefined_name", 12, 15, "undefined name `zz`", "did you mean `z`?"),
    ("shape_mismatch", 12, 15, "linear expects last axis 2, got [B, 32]", None),
    ("broadcast_mismatch", 13, 7, "shapes [B, 32, H, W] and [B, 32] do not broadcast", "unsqueeze(s, like=x)"),
    ("wrong_param_type", 7, 35, "parameter `reduction` must be int, got 2.5", "reduction=16"),
    ("missing_param", 6, 3, "parameter `channels` of `missing_param` has no default", "-p channels="),
    ("python_tag", 4, 8, "YAML tag `!!python/object/apply:os.system` is not allowed", "nothing in them is run"),
    ("empty", 1, 1, "the spec file is empty", "a spec needs at least"),
    ("unknown_key", 12, 1, "unknown key `outputz`", "did you mean `outputs`?"),
    ("bad_yaml", 6, 7, "invalid YAML", "brackets"),
    ("unknown_type", 7, 21, "unknown type `integer`", "did you mean `int`?"),
    ("missing_output", 12, 10, "output `y` is never assigned", "assign it"),
    ("bad_pattern", 11, 20, "axis `c` appears on one side only", "patterns look like"),
    ("layer_twice", 12, 3, "layer `fc1` is declared twice", "share its weights"),
]


def _error(name):
    path = BROKEN / f"{name}.yaml"
    from attndsl.spec import load_spec

    with pytest.raises(AttnDSLError) as info:
        spec = load_spec(path)
        compile_spec(spec, spec.example.get("params") or {})
    return path, info.value


@pytest.mark.parametrize("name,line,col,message,hint", CASES, ids=[c[0] for c in CASES])
def test_error_points_at_the_mistake(name, line, col, message, hint):
    path, err = _error(name)
    assert err.span is not None
    assert (err.span.file, err.span.line, err.span.col) == (str(path), line, col)
    text = err.render()
    first, *rest = text.splitlines()
    assert first == f"{path}:{line}:{col}: error: {err.message}"
    assert message in err.message
    if hint is None:
        assert err.hint is None
    else:
        assert hint in (err.hint or "")
    if path.read_text().strip():
        # the offending source line, then a caret under the column
        src = path.read_text().splitlines()[line - 1]
        assert rest[0].endswith(src)
        caret_line = rest[1]
        assert caret_line.index("^") - caret_line.index("|") - 2 == col - 1


def test_every_broken_spec_is_covered():
    assert {p.stem for p in BROKEN.glob("*.yaml")} == {c[0] for c in CASES}


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "attndsl", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("name", ["syntax", "python_tag", "shape_mismatch", "empty"])
def test_cli_reports_without_traceback_and_writes_nothing(name, tmp_path):
    out = tmp_path / "block.py"
    r = _cli("compile", str(BROKEN / f"{name}.yaml"), "-o", str(out))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "error:" in r.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


def test_cli_failure_keeps_an_existing_output_file(tmp_path):
    out = tmp_path / "block.py"
    out.write_text("# previous build\n")
    r = _cli("compile", str(BROKEN / "unknown_op.yaml"), "-o", str(out))
    assert r.returncode == 2
    assert out.read_text() == "# previous build\n"


def test_python_tag_is_never_run(tmp_path):
    r = _cli("check", str(BROKEN / "python_tag.yaml"))
    # os.system's echo would print to stdout; the only mention is the quoted source line
    assert (r.stdout + r.stderr).count("attndsl-should-never-run-this") == 1
    assert r.returncode != 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["-p", "reduction=abc"], "parameter `reduction` must be int, got 'abc'"),
        (["-p", "reductio=4"], "did you mean `reduction`?"),
        (["-p", "channels"], "must look like name=value"),
        (["-p", "reduction=0"], "must be at least 1"),
    ],
)
def test_cli_bad_parameters(args, message):
    r = _cli("compile", "senet", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert message in r.stderr


def test_unknown_spec_name_suggests():
    r = _cli("compile", "senett")
    assert r.returncode == 2 and "did you mean `senet`?" in r.stderr
