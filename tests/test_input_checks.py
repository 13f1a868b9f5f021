"""Run-time input checks of built and generated modules.

For every spec and every input, built and generated: a wrong rank (a `*S` run with 0 or 4 spatial axes), each
size the parameters fix, and each size two inputs share, given wrong, raise InputShapeError (a ValueError)
with the exact message; the example's and `shapes:` inputs pass; `check_inputs=False` opts out. For a
handful of specs the check stays invisible to torch.compile (no graph break, no extra recompile),
torch.fx, torch.jit.trace, torch.export and both ONNX exporters.

The expected messages are written from the spec's declared shapes and the IR's input shapes, not from the
layout the check itself reads.
"""

from __future__ import annotations

import copy
import functools
import inspect
import pickle
import re
import types
import warnings

import pytest
import torch
from torch import nn

import attndsl
from attndsl.codegen import source
from attndsl.errors import AttnDSLError
from attndsl.pipeline import load
from attndsl.runtime import InputShapeError
from attndsl.shapes import Pack
from tests.helpers import inline_spec

SPECS = sorted(attndsl.all_specs())

# declared sizes that are expressions of parameters: what the message names, at the example's parameters
EXPRESSION_NOTES = {
    ("psanet", "x", 2): "feat_size=[9, 11]",
    ("psanet", "x", 3): "feat_size=[9, 11]",
    ("genet", "x", 2): "spatial_size=[7, 9]",
    ("genet", "x", 3): "spatial_size=[7, 9]",
    ("dat", "x", 2): "fmap_size=[7, 9]",
    ("dat", "x", 3): "fmap_size=[7, 9]",
    ("focal_modulation", "x", 1): None,
    ("focal_modulation", "x", 2): None,  # H, W (channels_last)
    ("focal_modulation", "x", 3): "channels=32",
}
# declared sizes `k * n`, a multiple of a parameter expression k: the note the message gives at the example
MULTIPLES = {("maxvit", "x", 1): "partition_size=2", ("maxvit", "x", 2): "partition_size=2"}


def exec_generated(src: str, name: str):
    """The generated source as a module, without a file (torch.fx.wrap needs module-level code)."""
    mod = types.ModuleType(f"_generated_{name}")
    exec(compile(src, f"<generated {name}>", "exec"), mod.__dict__)
    return mod


@functools.cache
def modules(name: str):
    """(spec, example params, built, generated class): built once per spec."""
    spec = load(name)
    params = dict(spec.example.get("params") or {})
    torch.manual_seed(0)
    built = attndsl.build(name, **params).eval()
    c = built.meta["compiled"]
    cls = getattr(exec_generated(source(c, built), name), c.class_name)
    return spec, params, built, cls


@functools.cache
def generated(name: str):
    spec, params, built, cls = modules(name)
    gen = cls(**params).eval()
    gen.load_state_dict(built.state_dict())
    return gen


def declared(name: str) -> dict:
    """Input -> [(size as shown, parameter note or None, kind)], kind: int, symbol, multiple or pack."""
    spec, _, built, _ = modules(name)
    graph, params = built.meta["compiled"].graph, built.meta["compiled"].params
    out = {}
    for n, nid in graph.inputs:
        dims = []
        for axis, (d, text) in enumerate(zip(graph.node(nid)["shape"], spec.inputs[n])):
            if isinstance(d, Pack):
                dims.append((f"*{d.name}", None, "pack"))
            elif isinstance(d, int):
                if isinstance(text, int):
                    note = None
                elif text in params:
                    note = f"{text}={params[text]!r}"
                else:
                    note = EXPRESSION_NOTES[(name, n, axis)]
                dims.append((str(d), note, "int"))
            elif (name, n, axis) in MULTIPLES:
                dims.append((str(d), MULTIPLES[(name, n, axis)], "multiple"))
            else:
                dims.append((str(d), None, "symbol"))
        out[n] = dims
    return out


def wrong_inputs(name: str):
    """(input shapes, the exact message) for each way to get an input wrong."""
    spec = modules(name)[0]
    example = {n: list(spec.example["inputs"][n]) for n in spec.inputs}
    decl = declared(name)
    first_seen = {}  # symbol -> (input, axis)
    for n, dims in decl.items():
        shown = "[" + ", ".join(d for d, _, _ in dims) + "]"
        pack = next((i for i, (_, _, k) in enumerate(dims) if k == "pack"), None)
        ex = example[n]
        if pack is None:
            for bad in (ex + [1], ex[:-1]):
                yield {**example, n: bad}, f"{spec.name}: input {n}: expected {shown}, got {bad}"
        else:
            for spatial in (0, 4):
                bad = ex[:pack] + [2] * spatial + ex[len(ex) - (len(dims) - pack - 1) :][: len(dims) - pack - 1]
                yield (
                    {**example, n: bad},
                    (f"{spec.name}: input {n}: expected {shown} with 1 to 3 spatial axes, got {bad}"),
                )

        def axis_of(i):  # axes after a run count from the end
            return i if pack is None or i < pack else i - len(dims)

        for i, (d, note, kind) in enumerate(dims):
            if kind == "multiple":  # one more than the example's size: no multiple of k > 1
                bad = list(ex)
                bad[axis_of(i)] = ex[axis_of(i)] + 1
                yield {**example, n: bad}, f"{spec.name}: input {n}: expected {shown} ({note}), got {bad}"
            if kind == "int":
                bad = list(ex)
                bad[axis_of(i)] = int(d) + 1
                why = f" ({note})" if note else ""
                yield {**example, n: bad}, f"{spec.name}: input {n}: expected {shown}{why}, got {bad}"
            elif kind == "symbol" and d in first_seen:
                m, j = first_seen[d]
                assert m != n, "a symbol shared within one input: add its case"
                bad = list(ex)
                bad[axis_of(i)] = example[m][j] + 1
                yield (
                    {**example, n: bad},
                    (
                        f"{spec.name}: inputs {m} and {n} must agree on {d}: "
                        f"{m} has {example[m][j]}, {n} has {bad[axis_of(i)]}"
                    ),
                )
            elif kind == "symbol":
                first_seen[d] = (n, axis_of(i))


def tensors(spec, shapes: dict, batch=None):
    gen = torch.Generator().manual_seed(0)
    out = []
    for n in spec.inputs:
        shape = list(shapes[n])
        if batch is not None:
            shape[0] = batch
        out.append(torch.rand(tuple(shape), generator=gen))
    return out


def test_every_expression_size_is_known():
    """EXPRESSION_NOTES and MULTIPLES cover every declared size that is neither a number, a name nor a run."""
    found = {
        (name, n, i)
        for name in SPECS
        for n, dims in load(name).inputs.items()
        for i, d in enumerate(dims)
        if isinstance(d, str) and not d.lstrip("*").isidentifier()
    }
    assert found == set(EXPRESSION_NOTES) | set(MULTIPLES)


@pytest.mark.parametrize("name", SPECS)
def test_wrong_inputs_give_exact_messages(name):
    spec = modules(name)[0]
    cases = list(wrong_inputs(name))
    assert len(cases) >= 2 * len(spec.inputs)
    for m in (modules(name)[2], generated(name)):
        for shapes, message in cases:
            with pytest.raises(InputShapeError if m is modules(name)[2] else ValueError) as info:
                m(*tensors(spec, shapes))
            assert str(info.value) == message, f"{type(m).__name__} {shapes}"
            assert type(info.value).__name__ == "InputShapeError"


@pytest.mark.parametrize("name", SPECS)
def test_pickled_and_copied_modules_keep_the_check(name):
    spec, _, built, _ = modules(name)
    shapes, message = next(iter(wrong_inputs(name)))
    for m in (pickle.loads(pickle.dumps(built)), copy.deepcopy(built)):
        with pytest.raises(InputShapeError) as info:
            m(*tensors(spec, shapes))
        assert str(info.value) == message


@pytest.mark.parametrize("name", SPECS)
def test_example_and_shapes_pass(name):
    spec = modules(name)[0]
    with torch.no_grad():
        for shapes in [spec.example["inputs"]] + list(spec.shapes):
            xs = tensors(spec, shapes)
            for m in (modules(name)[2], generated(name)):
                m(*xs)


@pytest.mark.parametrize(
    "name", [n for n in SPECS if any(str(d).startswith("*") for dims in load(n).inputs.values() for d in dims)]
)
def test_every_run_works_at_the_spatial_axes_the_check_allows(name):
    """A `*S` spec runs at 1, 2 and 3 spatial axes: the range the check lets through is the one that works."""
    spec, decl = modules(name)[0], declared(name)
    for count in (1, 2, 3):
        shapes = {}
        for n, dims in decl.items():
            ex = list(spec.example["inputs"][n])
            kinds = [k for _, _, k in dims]
            pack = kinds.index("pack") if "pack" in kinds else None
            shapes[n] = ex if pack is None else ex[:pack] + [5, 4, 3][:count] + ex[len(ex) - len(dims) + pack + 1 :]
        with torch.no_grad():
            out = modules(name)[2](*tensors(spec, shapes))
        assert all(o.isfinite().all() for o in _outs(out)), shapes


def test_built_and_generated_modules_with_other_parameters():
    """Generated code keeps the checked sizes as expressions of its constructor's parameters."""
    vit = modules("vit")[3](channels=1, image_size=32, patch_size=8, hidden_size=64, num_heads=4, mlp_dim=128)
    vit(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError) as info:
        vit(torch.rand(1, 3, 32, 32))
    assert str(info.value) == "vit: input x: expected [B, 1, 32, 32] (channels=1), got [1, 3, 32, 32]"
    genet = modules("genet")[3](channels=4, spatial_size=[5, 6])
    genet(torch.rand(2, 4, 5, 6))
    with pytest.raises(ValueError) as info:
        genet(torch.rand(1, 4, 7, 9))
    assert str(info.value) == "genet: input x: expected [B, 4, 5, 6] (spatial_size=[5, 6]), got [1, 4, 7, 9]"


@pytest.mark.parametrize("name", ["ecanet", "simam", "triplet_attention"])
def test_opt_out(name):
    """Built for 16 channels, given 32: a clear error, or, with check_inputs=False, the old silent run."""
    built = attndsl.build(name, channels=16)
    cls = getattr(exec_generated(source(built.meta["compiled"], built), name), built.meta["compiled"].class_name)
    x = torch.rand(2, 32, 5, 6)
    for m in (built, cls(channels=16)):
        with pytest.raises(
            ValueError,
            match=rf"^{name}: input x: expected \[B, 16, .*\] \(channels=16\), "
            r"got \[2, 32, 5, 6\]$",
        ):
            m(x)
    for m in (attndsl.build(name, channels=16, check_inputs=False), cls(channels=16, check_inputs=False)):
        assert m(x).shape == x.shape
    assert not any(
        n.target is attndsl.runtime.check_input_shapes
        for n in attndsl.build(name, channels=16, check_inputs=False).graph.nodes
    )


def test_the_issue_cases():
    vit = attndsl.build("vit", channels=3, image_size=32, patch_size=8, hidden_size=64, num_heads=4, mlp_dim=128)
    with pytest.raises(ValueError) as info:
        vit(torch.rand(2, 3, 34, 34))
    assert str(info.value) == "vit: input x: expected [B, 3, 32, 32] (image_size=32), got [2, 3, 34, 34]"
    with pytest.raises(ValueError) as info:
        attndsl.build("senet", channels=64)(torch.rand(2, 64, 1, 2, 3, 4))
    assert str(info.value) == "senet: input x: expected [B, 64, *S] with 1 to 3 spatial axes, got [2, 64, 1, 2, 3, 4]"
    gate = attndsl.build("attention_gate", channels=16, gating_channels=32)
    with pytest.raises(ValueError) as info:
        gate(torch.rand(2, 16, 8, 8), torch.rand(3, 32, 4, 4))
    assert str(info.value) == "attention_gate: inputs x and g must agree on B: x has 2, g has 3"
    with pytest.raises(ValueError) as info:
        attndsl.build("senet", channels=64)([[1.0]])
    assert str(info.value) == "senet: input x: expected a tensor [B, 64, *S], got list"


def test_a_symbol_twice_in_one_input_and_a_run_with_axes_after_it():
    spec = inline_spec("y = x + 0 * transpose(x, 1, 2)", inputs="x: [B, N, N]", example="{inputs: {x: [2, 3, 3]}}")
    m = attndsl.build(spec)
    m(torch.rand(2, 3, 3))
    with pytest.raises(InputShapeError, match=r"^inline: input x: axes 1 and 2 must agree on N, got \[2, 3, 4\]$"):
        m(torch.rand(2, 3, 4))
    spec = inline_spec("y = x", inputs="x: [B, channels, '*S', 4]", example="{inputs: {x: [2, 8, 3, 4]}}")
    m = attndsl.build(spec)
    m(torch.rand(2, 8, 3, 5, 4))
    with pytest.raises(InputShapeError, match=r"^inline: input x: expected \[B, 8, \*S, 4\], got \[2, 8, 3, 5\]$"):
        m(torch.rand(2, 8, 3, 5))


def test_inputs_cannot_take_names_generated_code_uses():
    """An input named like a helper of generated code (`gate`) would need renaming in forward and in the
    check: such names are refused when the spec loads, at the input's line."""
    with pytest.raises(AttnDSLError) as info:
        inline_spec("y = gate * 2", inputs="gate: [B, channels]", example="{inputs: {gate: [2, 8]}}")
    assert "input name `gate` is a name that generated code already uses" in info.value.message
    assert info.value.span is not None and info.value.span.source_line.strip() == "gate: [B, channels]"


def test_check_inputs_is_not_a_parameter_name():
    with pytest.raises(AttnDSLError) as info:
        inline_spec("y = x", params="check_inputs: {type: bool, default: true}")
    assert "`check_inputs` cannot be a parameter name" in info.value.render()


def test_multiples_of_a_parameter_in_input_shapes():
    """`k * n` declares a size that must be a multiple of the parameter expression k, the quotient n being a
    symbol shared like any other; generated code keeps k an expression of its constructor's parameters."""
    spec = inline_spec(
        "y = x + 0 * mean(z)",
        params="p: {type: int, default: 3}",
        inputs="x: [B, 'p * n', '2 * p * m', channels]\nz: [B, n]",
        example="{inputs: {x: [2, 6, 12, 8], z: [2, 2]}}",
    )
    built = attndsl.build(spec)
    cls = getattr(exec_generated(source(built.meta["compiled"], built), "inline"), built.meta["compiled"].class_name)
    for m in (built, cls()):
        m(torch.rand(2, 6, 12, 8), torch.rand(2, 2))
        with pytest.raises(ValueError) as info:
            m(torch.rand(2, 7, 12, 8), torch.rand(2, 2))
        assert str(info.value) == "inline: input x: expected [B, 3*n, 6*m, 8] (p=3), got [2, 7, 12, 8]"
        assert type(info.value).__name__ == "InputShapeError"
        with pytest.raises(ValueError) as info:
            m(torch.rand(2, 6, 9, 8), torch.rand(2, 2))
        assert str(info.value) == "inline: input x: expected [B, 3*n, 6*m, 8] (p=3), got [2, 6, 9, 8]"
        with pytest.raises(ValueError) as info:  # the quotient is the symbol n
            m(torch.rand(2, 9, 12, 8), torch.rand(2, 2))
        assert str(info.value) == "inline: inputs x and z must agree on n: x has 3, z has 2"
    gen = cls(p=2)  # multiples of 2 and 4
    gen(torch.rand(1, 4, 8, 8), torch.rand(1, 2))
    with pytest.raises(ValueError, match=r"expected \[B, 2\*n, 4\*m, 8\] \(p=2\), got \[1, 4, 6, 8\]$"):
        gen(torch.rand(1, 4, 6, 8), torch.rand(1, 2))
    one = attndsl.build(spec, p=1)  # k = 1: any size, n the size itself
    one(torch.rand(1, 5, 6, 8), torch.rand(1, 5))
    with pytest.raises(AttnDSLError, match="not a positive size"):
        attndsl.build(inline_spec("y = x", params="p: {type: int, default: 0}", inputs="x: [B, 'p * n']"))
    with pytest.raises(AttnDSLError, match="needs numbers"):  # a product of two symbols is no multiple
        attndsl.build(inline_spec("y = x", inputs="x: [B, 'n * m']"))


def test_list_parameters_may_be_indexed_in_input_shapes():
    spec = inline_spec(
        "y = x", params="size: {type: 'list[int]', default: [3, 4]}", inputs="x: [B, channels, 'size[0]', 'size[1]']"
    )
    m = attndsl.build(spec)
    m(torch.rand(1, 8, 3, 4))
    with pytest.raises(InputShapeError, match=r"\(size=\[3, 4\]\), got \[1, 8, 4, 4\]$"):
        m(torch.rand(1, 8, 4, 4))
    with pytest.raises(AttnDSLError, match="index 2 is out of range for a list of 2"):
        attndsl.build(
            inline_spec(
                "y = x", params="size: {type: 'list[int]', default: [3, 4]}", inputs="x: [B, channels, 'size[2]']"
            )
        )


# --- tracers and compilers, for a handful of specs ------------------------------------------------

TRACED = ["senet", "sca_cnn", "attention_gate", "vit"]


class Host(nn.Module):
    """A model holding a block, as users write them."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):  # named arguments: symbolic tracing cannot unpack *args
        return self.block(x)


class Host2(Host):
    def forward(self, x, y):
        return self.block(x, y)


def host(block, n: int) -> Host:
    return Host(block) if n == 1 else Host2(block)


def both(name, check_inputs=True):
    """The built and the generated module at the example's parameters, with equal weights."""
    spec, params, _, cls = modules(name)
    torch.manual_seed(0)
    built = attndsl.build(name, check_inputs=check_inputs, **params).eval()
    gen = cls(check_inputs=check_inputs, **params).eval()
    gen.load_state_dict(built.state_dict())
    return spec, [built, gen]


def bad_case(name):
    return next(iter(wrong_inputs(name)))


def _outs(o):
    return tuple(o) if isinstance(o, (tuple, list)) else (o,)


def close(a, b):
    for u, v in zip(_outs(a), _outs(b)):
        torch.testing.assert_close(u, v, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", TRACED)
def test_torch_compile_fullgraph_no_extra_recompiles(name):
    from torch._dynamo.testing import CompileCounter

    counts = {}
    for check in (True, False):
        spec, ms = both(name, check)
        for m in ms:
            torch._dynamo.reset()
            counter = CompileCounter()
            compiled = torch.compile(m, backend=counter, fullgraph=True)
            with torch.no_grad():
                for batch in (2, 3, 2, 4):
                    xs = tensors(spec, spec.example["inputs"], batch)
                    close(compiled(*xs), m(*xs))
            counts[check, type(m).__name__] = counter.frame_count
            if check:
                shapes, message = bad_case(name)
                # dynamo wraps it, and shows the sizes that made it recompile as symbols
                with pytest.raises(Exception, match=re.escape(message.split(", got ")[0])):
                    compiled(*tensors(spec, shapes))
    torch._dynamo.reset()
    for kind in {k for _, k in counts}:
        assert counts[True, kind] == counts[False, kind], counts


@pytest.mark.parametrize("name", TRACED)
def test_torch_compile_without_fullgraph_raises_the_check_itself(name):
    spec, ms = both(name)
    shapes, message = bad_case(name)
    for m in ms:
        torch._dynamo.reset()
        compiled = torch.compile(m, backend="eager")
        compiled(*tensors(spec, spec.example["inputs"]))
        with pytest.raises(ValueError) as info:
            compiled(*tensors(spec, shapes))
        assert str(info.value) == message
    torch._dynamo.reset()


@pytest.mark.parametrize("name", TRACED)
def test_fx_symbolic_trace_keeps_the_check(name):
    spec, ms = both(name)
    shapes, message = bad_case(name)
    xs = tensors(spec, spec.example["inputs"])
    for m in ms:
        traced = torch.fx.symbolic_trace(host(m, len(xs)))
        traced.graph.eliminate_dead_code()  # the check has no users, and must stay
        traced.recompile()
        assert [n for n in traced.graph.nodes if getattr(n.target, "__name__", "") == "check_input_shapes"]
        copies = [pickle.loads(pickle.dumps(traced))] if m is ms[0] else []  # generated: not importable here
        for t in [traced] + copies:
            close(t(*xs), m(*xs))
            with pytest.raises(ValueError) as info:
                t(*tensors(spec, shapes))
            assert str(info.value) == message


@pytest.mark.parametrize("name", TRACED)
def test_jit_trace_at_two_batch_sizes(name):
    spec, ms = both(name)
    for m in ms:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            traced = torch.jit.trace(m, tuple(tensors(spec, spec.example["inputs"], 2)))
        lines, start = inspect.getsourcelines(attndsl.runtime.check_input_shapes.__wrapped__)
        assert not [
            w
            for w in caught
            if issubclass(w.category, torch.jit.TracerWarning)  # the check stays out
            and start <= w.lineno < start + len(lines)
            and w.filename == attndsl.runtime.__file__
        ]
        for batch in (2, 3):
            xs = tensors(spec, spec.example["inputs"], batch)
            close(traced(*xs), m(*xs))


@pytest.mark.parametrize("name", TRACED)
def test_torch_export_dynamic_batch(name):
    spec, ms = both(name)
    batch = torch.export.Dim("batch", min=1, max=64)
    for m in ms:
        xs = tuple(tensors(spec, spec.example["inputs"]))
        ep = torch.export.export(m, xs, dynamic_shapes=tuple({0: batch} for _ in xs))
        for b in (1, 3):
            ys = tensors(spec, spec.example["inputs"], b)
            close(ep.module()(*ys), m(*ys))


@pytest.mark.parametrize("name", ["senet", "attention_gate", "vit"])
@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_with_checks_on(name, dynamo, tmp_path):
    import onnxruntime as ort

    spec, ms = both(name)
    # wrapped: the TorchScript exporter mistakes a GraphModule's fx graph for a TorchScript one
    m = host(ms[0], len(spec.inputs)).eval()
    xs = tuple(tensors(spec, spec.example["inputs"]))
    names = list(spec.inputs)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=64)
            torch.onnx.export(
                m, xs, str(path), input_names=names, dynamo=True, dynamic_shapes=tuple({0: batch} for _ in xs)
            )
        else:
            torch.onnx.export(
                m,
                xs,
                str(path),
                input_names=names,
                opset_version=17,
                dynamo=False,
                dynamic_axes={n: {0: "batch"} for n in names},
            )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (2, 3):
        ys = tensors(spec, spec.example["inputs"], b)
        got = session.run(None, {n: y.numpy() for n, y in zip(names, ys)})
        with torch.no_grad():
            want = _outs(m(*ys))
        for g, w in zip(got, want):
            torch.testing.assert_close(torch.from_numpy(g), w, atol=1e-4, rtol=1e-4)
