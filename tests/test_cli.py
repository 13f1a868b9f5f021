"""The command line: exit codes, output files, and what `check` runs.

Exit 2 for every spec, parameter, usage or output-path error, from every command, with
the rendered error and no traceback; `check` exits 1 when a spec compiles but its modules
fail to run or disagree. `-o` writes a whole file with the umask's permissions or nothing.
"""

import os
import stat
from pathlib import Path

import pytest
import torch

import attndsl
from attndsl import cli
from attndsl.check import check_spec, input_shapes, load_generated
from attndsl.passes.fuse_gate import _ACTS
from attndsl.pipeline import compile_spec, load

BROKEN = Path(__file__).parent / "broken"

SPEC = """name: {name}
title: CLI test
family: channel
paper: none
params:
  channels: {{type: int, min: 1}}
inputs:
  x: [B, channels, H, W]
f: |
  {body}
outputs: [y]
example: {{params: {{channels: 4}}, inputs: {{x: [2, 4, 5, 3]}}}}
"""


def write_spec(tmp_path, body, name="block"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, body=body))
    return str(path)


def run(capsys, *args):
    rc = cli.main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return rc, out.out, out.err


# --- exit codes -------------------------------------------------------------------------------


def test_check_exit_codes(tmp_path, capsys):
    assert run(capsys, "check", "senet")[0] == 0
    rc, out, _ = run(capsys, "check", str(BROKEN / "syntax.yaml"))
    assert rc == 2 and "syntax.yaml:12:41: error: unexpected end of program" in out
    # compiles, but its output is not finite: a failed check, not a spec error
    rc, out, _ = run(capsys, "check", write_spec(tmp_path, "y = log(x - x)"))
    assert rc == 1 and "non-finite output" in out
    # a spec error wins over a failure, whatever the order
    assert run(capsys, "check", write_spec(tmp_path, "y = log(x - x)"), str(BROKEN / "empty.yaml"))[0] == 2


@pytest.mark.parametrize(
    "args",
    [
        ["compile", "no_such_spec"],
        ["check", "no_such_spec"],
        ["compile", "senet", "-p", "channels"],
        ["check", "senet", "-p", "channels=abc"],
        ["check", "senet", "-p", "nope=3"],
        ["compile", "senet", "-p", "nope=3"],
        ["compile", "senet", "--dump-ir", "nowhere"],
        ["compile", "senet", "--passes", "nope"],
    ],
)
def test_usage_and_parameter_errors_exit_2(args, capsys):
    rc, out, err = run(capsys, *args)
    assert rc == 2 and "error:" in out + err


def test_argparse_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["compile"])
    assert info.value.code == 2


# --- -o ---------------------------------------------------------------------------------------


def _bad_outputs(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    return [
        (tmp_path / "missing" / "block.py", "there is no directory"),
        (tmp_path / "a_dir", "it is a directory"),
        (tmp_path / "a_file" / "block.py", "there is no directory"),
        (Path("/proc/attndsl_block.py"), "cannot write"),
    ]


def test_bad_output_paths_are_clean_errors(tmp_path, capsys):
    for out, message in _bad_outputs(tmp_path):
        before = sorted(p.name for p in tmp_path.rglob("*"))
        rc, _, err = run(capsys, "compile", "senet", "-o", str(out))
        assert rc == 2 and f"error: cannot write `{out}`" in err and message in err, err
        assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing left behind


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_umask_permissions(tmp_path, capsys, umask):
    old = os.umask(umask)
    try:
        out = tmp_path / "senet.py"
        assert run(capsys, "compile", "senet", "-o", str(out))[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["senet.py"]


# --- what check runs --------------------------------------------------------------------------


def test_check_derives_input_sizes_from_the_parameters(capsys):
    rc, out, _ = run(capsys, "check", "senet", "-p", "channels=128")
    assert rc == 0 and "x[2, 128, 7, 9]" in out
    rc, out, _ = run(capsys, "check", "ecanet", "-p", "channels=32")
    assert rc == 0 and "x[2, 32, " in out and "x[2, 16, " not in out


def test_input_shapes_substitute_parameters_and_keep_the_free_symbols(tmp_path):
    path = tmp_path / "shapes.yaml"
    path.write_text(
        SPEC.format(name="shapes", body="y = x")
        .replace("  x: [B, channels, H, W]", '  x: [B, channels, "*S"]\n  h: [B, "2 * channels"]')
        .replace("inputs: {{x: [2, 4, 5, 3]}}".format(), "inputs: {x: [2, 4, 5, 3, 7], h: [2, 8]}")
    )
    spec = load(str(path))
    values = spec.resolve(channels=6)
    assert input_shapes(spec, values) == {"x": [2, 6, 5, 3, 7], "h": [2, 12]}
    assert input_shapes(spec, spec.resolve(channels=4)) == {"x": [2, 4, 5, 3, 7], "h": [2, 8]}


def test_check_keeps_the_symbol_a_conditional_size_chooses(capsys):
    """`"spatial_size[0] if ... else H"` with the symbol branch taken keeps the example's size."""
    rc, out, _ = run(capsys, "check", "genet", "-p", "extent=2")
    assert rc == 0 and "x[2, 16, 7, 9]" in out
    rc, out, _ = run(capsys, "check", "focal_modulation", "-p", "layout=channels_first")
    assert rc == 0 and "x[2, 32, 9, 32]" in out


def test_check_seeds_both_modules_alike(tmp_path):
    report = check_spec(write_spec(tmp_path, "y = dropout(x, 0.5) + rand_like(x)", "noisy"))
    assert report.ok, report.render()
    assert "agree" in report.render()


# --- every activation fuse_gate fuses runs, built and generated ----------------------------------


@pytest.mark.parametrize("plus_one", [False, True])
@pytest.mark.parametrize("act", _ACTS)
def test_every_fused_gate_activation_runs(act, plus_one, tmp_path):
    body = (
        f"y = x * (1 + {act}(mean(x, dims=1, keepdim=true)))"
        if plus_one
        else f"y = x * {act}(mean(x, dims=1, keepdim=true))"
    )
    path = write_spec(tmp_path, body, f"gate_{act}")
    c = compile_spec(path, {"channels": 4})
    assert c.stats["fuse_gate"]["gate"] == 1 and any(c.graph.node(n)["op"] == "gate" for n in c.graph.order())
    x = torch.randn(2, 4, 5, 3)
    s = x.mean(1, keepdim=True)
    a = getattr(torch.nn.functional, act)(s)
    want = x * (1 + a) if plus_one else x * a
    built = attndsl.build(path, channels=4)
    gen = getattr(load_generated(attndsl.generate(path, channels=4)), c.class_name)(4)
    torch.testing.assert_close(built(x), want)
    torch.testing.assert_close(gen(x), want)


def test_huge_parameters_fail_at_the_layer_before_allocating(capsys):
    rc, _, err = run(capsys, "compile", "senet", "-p", "channels=1000000000000")
    assert rc == 2 and "senet.yaml:13:9: error: `linear` would allocate" in err
    rc, out, _ = run(capsys, "check", "senet", "-p", "channels=99999999999999999999")
    assert rc == 2 and "parameter `channels` is too large" in out
