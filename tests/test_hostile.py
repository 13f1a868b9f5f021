"""Hostile specs in tests/hostile/: untrusted input gets an attndsl error at its file:line:col, never more.

Each refused spec names the exact place and a message fragment and carries a hint; the
command line (compile -o and check) exits 2 on it without a traceback and writes nothing.
The injection specs compile (their text is legal), and the module they generate, imported
and run in a fresh interpreter, never executes any of it.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from attndsl import cli, limits
from attndsl.check import check_spec, load_generated
from attndsl.codegen import generate
from attndsl.errors import AttnDSLError
from attndsl.pipeline import compile_spec
from attndsl.spec import load_spec

HOSTILE = Path(__file__).parent / "hostile"
ROOT = Path(__file__).parent.parent
MARKER = "attndsl_pwned"  # what every injection attempt tries to create in the working directory

# file, line, col, message fragment
REFUSED = [
    # the cases
    ("path_traversal.spec", 1, 7, "spec name '../../traversal' is not a valid name"),
    ("billion_laughs.yaml", 14, 6, "YAML anchors and aliases"),
    ("non_utf8.yaml", 2, 24, "the spec file is not UTF-8 (byte 0xe9)"),
    ("binary.yaml", 10, 8, "this is a binary file, not a spec"),
    ("nested_calls.yaml", 10, 162, "nested deeper than 64 levels"),
    ("long_sum.yaml", 10, 7, "nested deeper than 64 levels"),
    ("huge_range.yaml", 10, 12, "range of 1000000000 steps is over the limit of 4096"),
    ("huge_channels.yaml", 10, 8, "`linear` would allocate 1,000,000,000,000,000,000,000,000 elements"),
    ("list_tensor_sum.yaml", 10, 7, "`+` needs tensors or numbers, got a list"),
    ("list_number_sum.yaml", 10, 7, "`+` needs tensors or numbers, got a list"),
    # more
    ("class_collision.spec", 1, 7, "gives the class name `F`, which generated code already uses"),
    ("reserved_input.yaml", 8, 3, "input name `torch` is a name that generated code already uses"),
    ("param_name.yaml", 7, 3, "is not a valid name"),
    ("default_exec.yaml", 7, 28, "unknown function `exec` in a parameter expression"),
    ("infinite_default.yaml", 7, 33, "parameter `scale` is not a finite number"),
    ("keyword_layer.yaml", 10, 3, "`class` is a Python keyword"),
    ("layer_forward.yaml", 10, 3, "a layer cannot be named `forward`"),
    ("deep_yaml.yaml", 13, 39, "YAML nested deeper than 32 levels"),
    ("float_overflow.yaml", 10, 7, "`pow` overflows"),
    ("huge_number.yaml", 10, 11, "number `1e999` is too large"),
    ("pow_bomb.yaml", 10, 7, "9 ** 387420489 is too large"),
    ("string_repeat.yaml", 10, 7, "`*` needs numbers, got a string"),
    ("string_tensor.yaml", 10, 7, "`*` needs tensors or numbers, got a string"),
    ("tensor_as_number.yaml", 10, 18, "`softmax`: `dim` must be known at compile time, got a tensor"),
    ("recursive_def.yaml", 10, 14, "functions call each other more than 16 deep"),
    ("huge_split.yaml", 10, 7, "`split` would make 100000 results, over the limit of 4096"),
    ("huge_eye.yaml", 10, 7, "`eye` would allocate 1,000,000,000,000 elements"),
    ("huge_triu.yaml", 10, 20, "a 10000000 x 10000000 matrix has more than"),
    ("loop_blowup.yaml", 13, 7, "unrolling runs more than 20,000 statements"),
    ("many_statements.yaml", 2010, 3, "more than 2000 statements in one program"),
    ("line_separator.yaml", 11, 7, "unexpected `(`"),
    ("example_params_list.yaml", 12, 19, "`example.params` must be a mapping"),
    ("gate_act.yaml", 10, 18, "a gate applies one of sigmoid, tanh, hardsigmoid, got 'load'"),
]
INJECTIONS = [
    "inject_title.yaml",
    "inject_paper.yaml",
    "inject_notes.yaml",
    "inject_comment.yaml",
    "inject_unicode_title.yaml",
]


def _compile(path):
    spec = load_spec(path)
    return compile_spec(spec, spec.example.get("params") or {})


def test_the_corpus_is_covered():
    names = {p.name for p in HOSTILE.iterdir()}
    assert names == {c[0] for c in REFUSED} | set(INJECTIONS) | {"huge_input_example.yaml"}


@pytest.mark.parametrize("name,line,col,message", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_hostile_spec_is_refused_at_its_place(name, line, col, message):
    path = HOSTILE / name
    with pytest.raises(AttnDSLError) as info:
        _compile(path)
    err = info.value
    assert (err.span.file, err.span.line, err.span.col) == (str(path), line, col)
    assert message in err.message
    assert err.hint
    first = err.render().splitlines()[0]
    assert first == f"{path}:{line}:{col}: error: {err.message}"
    assert all(c.isprintable() for c in err.render().replace("\n", ""))  # the shown source line too


@pytest.mark.parametrize("name", [c[0] for c in REFUSED])
def test_the_command_line_exits_2_without_traceback_and_writes_nothing(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out" / "block.py"
    out.parent.mkdir()
    path = str(HOSTILE / name)
    assert cli.main(["compile", path, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and "error:" in err and "Traceback" not in err
    assert cli.main(["check", path]) == 2
    text = capsys.readouterr().out
    assert "error:" in text and "Traceback" not in text
    assert list(out.parent.iterdir()) == [] and sorted(os.listdir(tmp_path)) == ["out"]


def test_the_cli_in_a_fresh_interpreter(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (
        ["compile", str(HOSTILE / "billion_laughs.yaml"), "-o", str(tmp_path / "b.py")],
        ["check", str(HOSTILE / "path_traversal.spec")],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "attndsl", *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
        )
        assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
    assert os.listdir(tmp_path) == []


def test_oversized_files_are_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: big\nnotes: " + "x" * limits.MAX_FILE_BYTES + "\n")
    with pytest.raises(AttnDSLError, match="larger than 256 KiB") as info:
        load_spec(path)
    assert (info.value.span.line, info.value.span.col) == (1, 1) and info.value.hint


def test_example_inputs_past_the_element_limit_are_refused_by_check(capsys):
    path = HOSTILE / "huge_input_example.yaml"
    _compile(path)  # the spec itself is fine
    report = check_spec(str(path))
    assert report.error is not None and "over 268,435,456 elements" in report.error.message
    assert (report.error.span.line, report.error.span.col) == (12, 46)
    assert cli.main(["check", str(path)]) == 2


# --- injection: spec text never runs ---------------------------------------------------------


@pytest.mark.parametrize("name", INJECTIONS)
def test_injected_text_never_runs(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    src = generate(str(HOSTILE / name), channels=8)
    compile(src, name, "exec")
    if name == "inject_comment.yaml":  # spec lines are quoted as comments in forward
        assert '# y = relu(x)  # """; open("attndsl_pwned", "w") \\' in src
    out = tmp_path / "gen" / "block.py"
    out.parent.mkdir()
    assert cli.main(["compile", str(HOSTILE / name), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == src
    assert cli.main(["check", str(HOSTILE / name)]) == 0  # imports and runs the generated module
    capsys.readouterr()
    c = _compile(HOSTILE / name)
    script = (
        f"import importlib.util, torch\n"
        f"s = importlib.util.spec_from_file_location('block', {str(out)!r})\n"
        f"m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        f"print(m.__doc__)\n"
        f"block = getattr(m, {c.class_name!r})(8)\n"
        f"print(block(torch.randn(2, 8, 5, 5)).shape)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "torch.Size([2, 8, 5, 5])" in r.stdout
    assert not (tmp_path / MARKER).exists()
    assert not Path(MARKER).exists()


def test_spec_text_is_kept_readable_in_the_docstring(tmp_path):
    c = _compile(HOSTILE / "inject_title.yaml")
    mod = load_generated(generate(str(HOSTILE / "inject_title.yaml"), channels=8))
    assert c.spec.title in mod.__doc__  # escaped in the source, the same text once read
    doc = load_generated(generate(str(HOSTILE / "inject_unicode_title.yaml"), channels=8)).__doc__
    assert "\u2028" in doc and "\x00" in doc  # written as escapes, read back as the characters


# --- check's temporary files -----------------------------------------------------------------


def test_check_writes_only_inside_a_temporary_directory_it_removes(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = set(sys.modules)
    assert check_spec("senet").ok
    assert list(scratch.iterdir()) == [] and list(work.iterdir()) == []
    assert not [m for m in set(sys.modules) - before if m.startswith("_attndsl_generated")]


# --- names and lists kept in step with torch ---------------------------------------------------


def test_layer_names_torch_modules_use_are_all_refused():
    import torch

    from attndsl.frontend import MODULE_ATTRS

    public = {n for n in dir(torch.fx.GraphModule) if not n.startswith("_")} | {"training"}
    assert public <= MODULE_ATTRS


def test_names_generated_code_uses_are_refused():
    from attndsl import runtime
    from attndsl.spec import code_names

    helpers = {n for n, v in vars(runtime).items() if callable(v) and getattr(v, "__module__", "") == runtime.__name__}
    assert helpers <= code_names()
    assert {"torch", "F", "nn", "math", "self", "BatchNorm", "super", "max"} <= code_names()


def test_no_shipped_spec_uses_yaml_anchors():
    import yaml

    for p in (ROOT / "specs").glob("*.yaml"):
        assert not any(
            isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None) for e in yaml.parse(p.read_text())
        ), p
