"""In-place gate mode: `build(..., inplace=True)` and the generated constructor's `inplace=True` write
y = x * s into the block's input x exactly when nothing reads x afterwards and no gradient is wanted."""

from __future__ import annotations

import pytest
import torch

import attndsl
from attndsl.check import example_inputs, load_generated
from attndsl.codegen import generate
from attndsl.pipeline import load
from tests.helpers import spec_text
from tests.oracle import randomize

SE_G = """
fc1 = linear(channels, channels // 2)
fc2 = linear(channels // 2, channels)
s = sigmoid(fc2(relu(fc1(mean(x, dims=spatial)))))
"""


def _pair(spec, **params):
    """(out-of-place, in-place) builds with the same random weights, eval."""
    torch.manual_seed(0)
    plain = attndsl.build(spec, **params)
    randomize(plain)
    fast = attndsl.build(spec, inplace=True, **params)
    fast.load_state_dict(plain.state_dict())
    return plain.eval(), fast.eval()


def _inline(tmp_path, f, g=SE_G, outputs="[y]"):
    path = tmp_path / "inline.yaml"
    path.write_text(spec_text(f, g=g, outputs=outputs))
    return path


def _run(module, x, grad=False):
    with torch.set_grad_enabled(grad):
        return module(x)


@pytest.mark.parametrize("name", sorted(attndsl.all_specs()))
def test_every_spec_gives_the_out_of_place_result_and_writes_x_only_where_counted(name):
    spec = load(name)
    params = spec.example.get("params") or {}
    plain, fast = _pair(name, **params)
    xs = example_inputs(spec)
    with torch.no_grad():
        want = plain(*[x.clone() for x in xs])
        given = [x.clone() for x in xs]
        got = fast(*given)
    want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
    for w, g in zip(want, got):
        assert torch.equal(w, g), name
    counts = fast.meta["compiled"].stats["inplace"]
    written = [not torch.equal(a, b) for a, b in zip(xs, given)]
    assert any(written) == bool(counts["gate"] + counts["mul"]), (name, counts, written)


def test_senet_output_is_its_input_tensor():
    plain, fast = _pair("senet", channels=16)
    assert fast.meta["compiled"].stats["inplace"] == {"gate": 1, "mul": 0, "input_read_later": 0}
    x = torch.randn(2, 16, 5, 6)
    want = _run(plain, x.clone())
    given = x.clone()
    got = _run(fast, given)
    assert got.data_ptr() == given.data_ptr() and torch.equal(got, want) and torch.equal(given, want)


def test_a_plain_product_with_a_block_input_is_written_in_place(tmp_path):
    spec = _inline(tmp_path, "y = x * unsqueeze(s2, like=x)", g=SE_G + "s2 = relu(s - 0.5)\n")
    plain, fast = _pair(spec)
    assert fast.meta["compiled"].stats["inplace"] == {"gate": 0, "mul": 1, "input_read_later": 0}
    x = torch.randn(2, 8, 5, 6)
    given = x.clone()
    assert torch.equal(_run(fast, given), _run(plain, x)) and torch.equal(given, plain(x.clone()).detach())


@pytest.mark.parametrize(
    "f, outputs",
    [
        ("y = x * unsqueeze(s, like=x)\nz = y + x", "[z]"),  # x read after the gate
        ("v = rearrange(x, 'b c h w -> b c (h w)')\ny = x * unsqueeze(s, like=x)", "[y, v]"),  # a view is an output
        ("y = x * unsqueeze(s, like=x)", "[y, x]"),  # x is an output itself
    ],
)
def test_an_input_read_after_the_gate_is_left_alone(tmp_path, f, outputs):
    plain, fast = _pair(_inline(tmp_path, f, outputs=outputs))
    counts = fast.meta["compiled"].stats["inplace"]
    assert counts["gate"] + counts["mul"] == 0 and counts["input_read_later"] >= 1
    x = torch.randn(2, 8, 5, 6)
    given = x.clone()
    want, got = _run(plain, x), _run(fast, given)
    assert torch.equal(given, x)
    for w, g in zip(want, got):
        assert torch.equal(w, g)


def test_with_gradients_wanted_it_computes_out_of_place():
    plain, fast = _pair("senet", channels=16)
    x = torch.randn(2, 16, 5, 6)
    given = x.clone().requires_grad_()
    y = _run(fast, given, grad=True)
    assert torch.equal(given.detach(), x) and y.data_ptr() != given.data_ptr()
    y.sum().backward()
    ref = x.clone().requires_grad_()
    _run(plain, ref, grad=True).sum().backward()
    assert torch.equal(given.grad, ref.grad)
    fast.train()  # training: the weights want gradients, the input does not
    given = x.clone()
    _run(fast, given, grad=True).sum().backward()
    assert torch.equal(given, x) and fast.fc1.weight.grad is not None


def test_other_shapes_and_dtypes_than_x_are_not_written_into():
    from attndsl.runtime import gate, mul_into

    x, s = torch.randn(2, 3, 1), torch.randn(2, 3, 4)  # the result is larger than x
    given = x.clone()
    assert torch.equal(mul_into(given, s, True), x * s) and torch.equal(given, x)
    h = torch.randn(2, 3, 4, dtype=torch.float16)  # the result is float32
    given = h.clone()
    assert gate(given, s, "sigmoid", False, inplace=True).dtype == torch.float32 and torch.equal(given, h)
    e = torch.randn(2, 3, 1).expand(2, 3, 4)  # elements sharing memory
    assert torch.equal(mul_into(e, s, True), e * s)


def test_generated_module_takes_inplace_in_its_constructor():
    src = generate("senet", channels=16)
    assert "inplace: bool = False" in src and "inplace=self._attndsl_inplace" in src
    mod = load_generated(src)
    plain, _ = _pair("senet", channels=16)
    x = torch.randn(2, 16, 5, 6)
    want = _run(plain, x.clone())
    for inplace in (False, True):
        m = mod.Senet(channels=16, inplace=inplace).eval()
        m.load_state_dict(plain.state_dict())
        given = x.clone()
        assert torch.equal(_run(m, given), want)
        assert torch.equal(given, want if inplace else x)


def test_generated_code_of_a_module_built_inplace_follows_its_constructor():
    from attndsl.codegen import source

    gm = attndsl.build("ecanet", channels=16, inplace=True)
    src = source(gm.meta["compiled"], gm)
    m = load_generated(src).Ecanet(channels=16).eval()
    m.load_state_dict(gm.state_dict())
    x = torch.randn(2, 16, 5, 6)
    given = x.clone()
    _run(m, given)
    assert torch.equal(given, x)  # the default, inplace=False


def test_inplace_is_reserved_for_the_constructor(tmp_path):
    from attndsl.errors import SpecError

    path = tmp_path / "inline.yaml"
    path.write_text(spec_text("y = x * 2", params="inplace: {type: int, default: 1}"))
    with pytest.raises(SpecError, match="inplace"):
        attndsl.build(path)


def test_under_torch_compile_the_input_is_written_too():
    plain, fast = _pair("senet", channels=16)
    compiled = torch.compile(fast, fullgraph=True)
    x = torch.randn(2, 16, 5, 6)
    want = _run(plain, x.clone())
    given = x.clone()
    torch.testing.assert_close(_run(compiled, given), want)
    torch.testing.assert_close(given, want)
    given = x.clone().requires_grad_()  # grad wanted: recompiled out of place
    y = _run(compiled, given, grad=True)
    assert torch.equal(given.detach(), x)
    torch.testing.assert_close(y, want)
