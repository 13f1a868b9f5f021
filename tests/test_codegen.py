"""Generated code: standalone, parametric where it can be, same state dict and outputs as the built module."""

import subprocess
import sys

import pytest
import torch

import attndsl
from attndsl.check import load_generated


def generated(name, **params):
    src = attndsl.generate(name, **params)
    return src, load_generated(src, name)


def test_constructor_takes_the_parameters_with_defaults():
    src, mod = generated("senet", channels=64)
    assert (
        "def __init__(self, channels: int, reduction: int = 16, *, check_inputs: bool = True, inplace: bool = False):"
        in src
    )
    for channels, reduction in [(64, 16), (32, 4), (48, 8)]:
        gen = mod.Senet(channels, reduction)
        built = attndsl.build("senet", channels=channels, reduction=reduction)
        assert list(gen.state_dict()) == list(built.state_dict())
        gen.load_state_dict(built.state_dict())
        x = torch.randn(2, channels, 5, 3)
        torch.testing.assert_close(gen(x), built(x), rtol=0, atol=0)


def test_default_expressions_are_kept():
    src, mod = generated("ecanet", channels=64)
    assert "k_size: int | None = None" in src
    assert mod.Ecanet(256).conv.kernel_size == attndsl.build("ecanet", channels=256).conv.kernel_size


def test_fixed_parameters_ask_for_a_recompile():
    # sknet's branch count sets how many layers the loop declares: the file is built for one value
    src, mod = generated("sknet", channels=64)
    assert "Fixed in this file (other values need a new compile): branches" in src
    mod.Sknet(64)  # the compiled value is fine
    with pytest.raises(ValueError, match="regenerate it with `attndsl compile"):
        mod.Sknet(64, branches=3)
    # channels stays free: it only sizes layers
    mod.Sknet(128)


def test_forward_quotes_the_spec_lines():
    src, _ = generated("senet", channels=64)
    assert "# s = sigmoid(fc2(relu(fc1(z))))" in src


def test_cli_output_runs_with_only_torch(tmp_path):
    out = tmp_path / "eca.py"
    r = subprocess.run(
        [sys.executable, "-m", "attndsl", "compile", "specs/ecanet.yaml", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    code = (
        "import sys, runpy; sys.modules['attndsl'] = None\n"  # any import of attndsl now fails
        f"ns = runpy.run_path({str(out)!r})\n"
        "import torch\n"
        "m = ns['Ecanet'](64)\n"
        "print(tuple(m(torch.randn(2, 64, 5, 7)).shape))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(2, 64, 5, 7)"


def test_any_rank_batchnorm_is_copied_into_the_file():
    from tests.helpers import inline_spec

    spec = inline_spec(
        """
        bn = batchnorm(channels)
        y = bn(x)
    """,
        inputs='x: [B, channels, "*S"]',
    )
    src = attndsl.generate(spec, channels=8)
    assert "class BatchNorm(nn.modules.batchnorm._BatchNorm):" in src
    mod = load_generated(src, "inline_bn")
    gen, built = mod.Inline(8), attndsl.build(spec, channels=8)
    gen.load_state_dict(built.state_dict())
    for shape in [(2, 8, 5), (2, 8, 3, 4), (2, 8, 2, 3, 4)]:
        x = torch.randn(shape)
        torch.testing.assert_close(gen(x), built(x), rtol=0, atol=0)
