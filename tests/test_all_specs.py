"""Every spec in specs/: `attndsl check` passes, torch.compile(fullgraph=True) agrees with eager,
generated code is standalone (torch and the standard library only), and an oracle test exists."""

import ast
from pathlib import Path

import pytest
import torch

import attndsl
from attndsl.check import check_spec, example_inputs
from attndsl.pipeline import load

SPECS = sorted(attndsl.all_specs())
ROOT = Path(__file__).resolve().parent.parent


def test_specs_exist():
    assert len(SPECS) >= 14


@pytest.mark.parametrize("name", SPECS)
def test_check(name):
    report = check_spec(name)
    assert report.ok, report.render()


@pytest.mark.parametrize("name", SPECS)
def test_has_reference_and_oracle_test(name):
    assert (ROOT / "tests" / "reference" / f"{name}.py").is_file()
    assert (ROOT / "tests" / "specs" / f"test_{name}.py").is_file()


@pytest.mark.parametrize("name", SPECS)
def test_generated_code_is_standalone(name):
    spec = load(name)
    src = attndsl.generate(name, **(spec.example.get("params") or {}))
    allowed = {"torch", "torch.nn.functional", "torch.nn", "math", "functools"}
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= allowed, ast.unparse(node)
        elif isinstance(node, ast.ImportFrom):
            assert node.module in allowed, ast.unparse(node)


@pytest.mark.parametrize("name", SPECS)
def test_torch_compile_fullgraph_matches_eager(name):
    spec = load(name)
    params = spec.example.get("params") or {}
    torch.manual_seed(0)
    eager = attndsl.build(name, **params).eval()
    compiled = torch.compile(eager, fullgraph=True)  # fullgraph: a graph break is an error
    xs = example_inputs(spec)
    with torch.no_grad():
        a, b = eager(*xs), compiled(*xs)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        torch.testing.assert_close(u, v, atol=1e-4, rtol=1e-4)
