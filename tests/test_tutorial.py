"""The "Writing your own block" tutorial: its two example specs against their references, and the page itself.

docs/tutorial.md marks every fenced block with the comment line before it:
`<!-- file: PATH -->` (the block is that file, whole), `<!-- excerpt: PATH -->` (consecutive lines of it),
`<!-- run -->` (`$ command` lines, each followed by what it prints, rerun here), `<!-- python -->` (run
here, in order, in one namespace) or `<!-- pytest -->` (a pytest command whose -k selects tests of this file).
The two blocks also pass the module-protocol matrix of tests/module_protocol.py.
"""

import contextlib
import io
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attndsl import cli
from attndsl.registry import all_specs
from tests.module_protocol import CHECKS, KINDS, Case
from tests.oracle import check_against_reference

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "examples" / "tutorial"
PAGE = ROOT / "docs" / "tutorial.md"
GRN_SPEC, SGE_SPEC = str(TUTORIAL / "grn.yaml"), str(TUTORIAL / "sge.yaml")
GRN = runpy.run_path(str(TUTORIAL / "grn_reference.py"))["GRN"]
SGE = runpy.run_path(str(TUTORIAL / "sge_reference.py"))["SGE"]


def test_grn_against_reference():
    check_against_reference(GRN_SPEC, {"channels": 8}, GRN(8), shapes=[{"x": [2, 8, 5, 7]}, {"x": [1, 8, 1, 3]}])


def test_grn_against_timm():
    """A second implementation, timm's, whose parameters have other names."""
    from timm.layers.grn import GlobalResponseNorm

    check_against_reference(
        GRN_SPEC,
        {"channels": 8},
        GlobalResponseNorm(8, channels_last=False),
        shapes=[{"x": [2, 8, 5, 7]}],
        key_map={"gamma": "weight", "beta": "bias"},
    )


@pytest.mark.parametrize("channels, groups", [(12, 3), (8, 1), (6, 6)])
def test_sge_against_reference(channels, groups):
    check_against_reference(
        SGE_SPEC,
        {"channels": channels, "groups": groups},
        SGE(channels, groups),
        shapes=[{"x": [2, channels, 5, 7]}, {"x": [1, channels, 2, 3]}],
        key_map={"scale": "weight", "shift": "bias"},
    )


def test_oracle_catches_a_wrong_reference():
    with pytest.raises(AssertionError, match="output"):
        check_against_reference(GRN_SPEC, {"channels": 8}, GRN(8, eps=0.1), shapes=[{"x": [2, 8, 5, 7]}])


def test_oracle_catches_a_wrong_key_map():
    with pytest.raises(AssertionError, match="output"):
        check_against_reference(
            SGE_SPEC,
            {"channels": 12, "groups": 3},
            SGE(12, 3),
            shapes=[{"x": [2, 12, 5, 7]}],
            key_map={"scale": "bias", "shift": "weight"},
        )


def test_defaults_and_initial_state():
    """The conditional default of `groups`, and the initialisations the notes promise."""
    import torch

    import attndsl

    assert attndsl.pipeline.load(SGE_SPEC).resolve(channels=128)["groups"] == 64
    assert attndsl.pipeline.load(SGE_SPEC).resolve(channels=96)["groups"] == 1
    x = torch.randn(2, 16, 5, 7)
    assert torch.equal(attndsl.build(GRN_SPEC, channels=16)(x), x)  # a fresh GRN is the identity
    torch.testing.assert_close(attndsl.build(SGE_SPEC, channels=16, groups=4)(x), x * torch.sigmoid(torch.tensor(1.0)))


def test_examples_are_not_shipped_and_the_draft_differs_by_one_line():
    assert not {"grn", "sge"} & set(all_specs())
    good = (TUTORIAL / "grn.yaml").read_text().splitlines()
    draft = (TUTORIAL / "mistake" / "grn.yaml").read_text().splitlines()
    assert len(good) == len(draft) and sum(a != b for a, b in zip(good, draft)) == 1


# --- the page ---------------------------------------------------------------------------------------------


def blocks():
    """(marker, argument, language, body) of every fenced block of the page, in order."""
    text = PAGE.read_text()
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, flags=re.M | re.S):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = re.fullmatch(r"<!-- (file|excerpt|run|python|pytest)(?:: (\S+))? -->", before)
        assert mark, f"docs/tutorial.md: the block at offset {m.start()} has no marker line before it"
        out.append((mark[1], mark[2], m[1], m[2]))
    return out


def test_every_block_is_marked_and_both_specs_appear_whole():
    kinds = [b[0] for b in blocks()]
    assert kinds.count("run") >= 5 and kinds.count("python") >= 3
    whole = {arg for kind, arg, _, _ in blocks() if kind == "file"}
    assert whole >= {
        "examples/tutorial/grn.yaml",
        "examples/tutorial/sge.yaml",
        "examples/tutorial/grn_reference.py",
        "examples/tutorial/sge_reference.py",
    }


def test_file_and_excerpt_blocks_match_the_files():
    for kind, arg, _, body in blocks():
        if kind == "file":
            assert body == (ROOT / arg).read_text(), f"docs/tutorial.md: the block of {arg} differs from the file"
        elif kind == "excerpt":
            assert body in (ROOT / arg).read_text(), (
                f"docs/tutorial.md: an excerpt of {arg} is not in the file:\n{body}"
            )


def test_pytest_block_selects_tests_of_this_file():
    (cmd,) = [body for kind, _, _, body in blocks() if kind == "pytest"]
    args = shlex.split(cmd)
    assert args[:4] == ["python", "-m", "pytest", "tests/test_tutorial.py"] and args[4] == "-k"
    words = re.findall(r"\w+", args[5])
    names = [n for n in globals() if n.startswith("test_")]
    for w in (w for w in words if w not in ("and", "or", "not")):
        assert any(w in n for n in names), w


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of examples/ in a fresh folder: the page's commands and Python run there, as from the repo root."""
    d = tmp_path_factory.mktemp("tutorial")
    shutil.copytree(
        ROOT / "examples" / "tutorial", d / "examples" / "tutorial", ignore=shutil.ignore_patterns("__pycache__")
    )
    return d


def run_command(cmd, monkeypatch):
    """What `cmd` prints, stdout and stderr together, and its exit status. `attndsl ...` (after any VAR=value) runs this checkout's
    CLI in-process, as `attndsl.cli.main` (tests/test_cli.py covers the installed command); the rest runs in bash."""
    words = shlex.split(cmd)
    with monkeypatch.context() as m:
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            m.setenv(*words.pop(0).split("=", 1))
        if words[0] != "attndsl":
            r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
            return (r.stdout + r.stderr).rstrip("\n").splitlines(), r.returncode
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            rc = cli.main(words[1:])
    return out.getvalue().rstrip("\n").splitlines(), rc


def test_run_and_python_blocks(workdir, monkeypatch):
    """The commands print what the page shows; then the Python blocks run (their asserts hold), in page order."""
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    namespace = {"__name__": "tutorial"}
    monkeypatch.delenv("ATTNDSL_SPEC_PATH", raising=False)
    for kind, _, _, body in blocks():
        if kind != "run":
            continue
        for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
            cmd, *want = chunk.rstrip("\n").split("\n")
            got, rc = run_command(cmd, monkeypatch)
            assert got == want, f"docs/tutorial.md: `{cmd}` printed\n" + "\n".join(got)
            assert rc == (2 if any("error:" in line for line in want) else 0), (cmd, rc)  # a spec mistake: 2
    try:
        for kind, _, _, body in blocks():
            if kind == "python":
                exec(compile(body, "docs/tutorial.md", "exec"), namespace)
    finally:
        sys.modules.pop("grn", None)  # the generated module the page imports
    assert (workdir / "grn.py").is_file()


@pytest.mark.parametrize("name", ["grn", "sge"])
@pytest.mark.parametrize("kind", KINDS)
def test_module_protocol(name, kind, monkeypatch):
    """The tutorial's blocks, found by name on ATTNDSL_SPEC_PATH, pass the matrix every shipped spec passes."""
    monkeypatch.setenv("ATTNDSL_SPEC_PATH", str(TUTORIAL))
    case = Case(name, kind)
    for check in CHECKS.values():
        check(case)
