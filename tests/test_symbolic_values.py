"""Symbolic sizes as values (issue 8): `narrow(x, 2, 1, H - 1)`, `view(x, [B, C, H * W])`, `x / (H * W)`.

A symbolic size of an input shape (`H`) is an integer known at run time: shapes use its sympy expression,
the built module reads it off the input (`x.size(2)` nodes in fx), and generated code does the same. Each
form is checked against plain torch on two input sizes (so nothing is baked in), under torch.compile,
torch.export with dynamic shapes and torch.jit.trace; misuse is an error at the spec line. The second half
checks the floor/ceil unification: a rearrange that splits H by 4 makes `H / 4` and `floor(H / 4)` one size.
"""

import warnings

import pytest
import torch
import torch.nn.functional as F

import attndsl
from attndsl.check import load_generated
from attndsl.errors import AttnDSLError
from attndsl.pipeline import compile_spec
from tests.helpers import graph, inline_spec

INPUTS = "x: [B, C, H, W]"
SIZES = [(2, 3, 8, 12), (1, 2, 5, 7)]


def modules(f, inputs=INPUTS):
    spec = inline_spec(f, inputs=inputs)
    src = attndsl.generate(spec)
    return attndsl.build(spec), load_generated(src).Inline(), src


def same_as_torch(f, ref, sizes=SIZES, grad=True, inputs=INPUTS):
    """Built and generated module agree with `ref` on inputs of every size in `sizes`, forward and gradient."""
    built, gen, src = modules(f, inputs)
    torch.manual_seed(0)
    for size in sizes:
        x = torch.randn(*size, dtype=torch.float64)
        want = ref(x.clone().requires_grad_(grad))
        for m in (built, gen):
            xi = x.clone().requires_grad_(grad)
            got = m(xi)
            torch.testing.assert_close(got, want.detach(), rtol=1e-12, atol=1e-12)
            if grad:
                w = torch.randn_like(got)
                (g,) = torch.autograd.grad((got * w).sum(), [xi])
                xr = x.clone().requires_grad_(True)
                (gr,) = torch.autograd.grad((ref(xr) * w).sum(), [xr])
                torch.testing.assert_close(g, gr, rtol=1e-12, atol=1e-12)
    return src


def out_shape(f, inputs=INPUTS):
    g = graph(f, inputs=inputs)
    return [str(d) for d in g.node(g.outputs[0][1])["shape"]]


# --- values --------------------------------------------------------------------------------------

CASES = [
    ("y = narrow(x, 2, 1, H - 1)", lambda x: x[:, :, 1:]),
    ("y = narrow(x, 3, W // 2, W - W // 2)", lambda x: x[:, :, :, x.shape[3] // 2 :]),
    ("y = view(x, [B, C, H * W])", lambda x: x.reshape(x.shape[0], x.shape[1], -1)),
    ("y = view(x, [B, -1])", lambda x: x.reshape(x.shape[0], -1)),
    ("y = x / (H * W)", lambda x: x / (x.shape[2] * x.shape[3])),
    ("y = (H * W) / x", lambda x: (x.shape[2] * x.shape[3]) / x),
    ("y = x * (H // 2) - W % 3", lambda x: x * (x.shape[2] // 2) - x.shape[3] % 3),
    ("y = x * ceil(H / 4) + floor(W / 3)", lambda x: x * -(-x.shape[2] // 4) + x.shape[3] // 3),
    ("y = x * (-H) + 2 ** C", lambda x: x * -x.shape[2] + 2 ** x.shape[1]),
    ("y = x * (H / 2)", lambda x: x * (x.shape[2] / 2)),
    ("y = x * (H * W * channels)", lambda x: x * (x.shape[2] * x.shape[3] * 8)),
    ("y = interpolate(x, size=[H // 2, W * 2])", lambda x: F.interpolate(x, size=[x.shape[2] // 2, x.shape[3] * 2])),
    ('y = interpolate(x, size=[H, W], mode="bilinear")', lambda x: x * 1),
    (
        "y = pad(x, [0, (4 - W % 4) % 4, 1, H % 2])",
        lambda x: F.pad(x, [0, (4 - x.shape[3] % 4) % 4, 1, x.shape[2] % 2]),
    ),
    ("y = select(x, 2, H - 1)", lambda x: x[:, :, -1]),
    ("y = roll(x, H // 2, dims=H)", lambda x: torch.roll(x, x.shape[2] // 2, 2)),
    (
        "y = x + view(arange(H * W, like=x), [H, W])",
        lambda x: x + torch.arange(x.shape[2] * x.shape[3], dtype=x.dtype).reshape(x.shape[2], x.shape[3]),
    ),
    ("y = x * linspace(-1, 1, W, like=x)", lambda x: x * torch.linspace(-1, 1, x.shape[3], dtype=x.dtype)),
    ("y = adaptive_avg_pool(x, [H // 2, 1])", lambda x: F.adaptive_avg_pool2d(x, (x.shape[2] // 2, 1))),
    ("n = H * W\ny = sum(x, dims=spatial) / n", lambda x: x.mean((2, 3))),
    ("def tail(v, k) = narrow(v, 2, k, H - k)\ny = tail(x, 2)", lambda x: x[:, :, 2:]),
]


@pytest.mark.parametrize("f, ref", CASES, ids=[c[0].splitlines()[-1] for c in CASES])
def test_sizes_as_values_match_torch(f, ref):
    same_as_torch(f, ref)


def test_shapes_use_the_symbolic_expression():
    assert out_shape("y = narrow(x, 2, 1, H - 1)") == ["B", "C", "H - 1", "W"]
    assert out_shape("y = view(x, [B, C, H * W])") == ["B", "C", "H*W"]
    assert out_shape("y = view(x, [B, -1, W])") == ["B", "C*H", "W"]
    assert out_shape("y = interpolate(x, size=[H // 2, 2 * W])") == ["B", "C", "floor(H/2)", "2*W"]
    assert out_shape("y = pad(x, [1, W, 0, 0])") == ["B", "C", "H", "2*W + 1"]
    assert out_shape("y = arange(H * W + 1, like=x)") == ["H*W + 1"]
    # a run-time size as a tensor operand keeps the tensor's shape
    assert out_shape("y = x / (H * W)") == ["B", "C", "H", "W"]
    # sizes that cancel are numbers again, known at compile time
    assert out_shape("y = narrow(x, 2, 0, H - H + 2)") == ["B", "C", "2", "W"]


def test_axis_names_still_name_axes():
    same_as_torch("y = softmax(x, dim=H)", lambda x: x.softmax(2))
    same_as_torch("y = mean(x, dims=[H, W])", lambda x: x.mean((2, 3)))
    same_as_torch("y = flatten(x, start=H)", lambda x: x.flatten(2))
    same_as_torch("y = narrow(x, W, 1, W - 2)", lambda x: x[..., 1:-1])


def test_generated_code_reads_sizes_from_the_input():
    src = same_as_torch("y = narrow(x, 2, 1, H - 1) / (H * W)", lambda x: x[:, :, 1:] / (x.shape[2] * x.shape[3]))
    assert "H = x.size(2)" in src and "W = x.size(3)" in src
    assert "torch.narrow(x, 2, 1, size)" in src


def test_size_of_a_second_input_and_of_the_variadic_shape():
    # K is only an axis of the second input: read off h
    spec = inline_spec(
        "y = narrow(x, 1, 0, K)", inputs="x: [B, C, H, W]\nh: [B, K]", example="{inputs: {x: [2, 8, 5, 6], h: [2, 3]}}"
    )
    m = attndsl.build(spec)
    gen = load_generated(attndsl.generate(spec)).Inline()
    x, h = torch.randn(2, 8, 5, 6), torch.randn(2, 3)
    for mod in (m, gen):
        torch.testing.assert_close(mod(x, h), x[:, :3])
    # C of a [B, C, *S] input alongside its variadic run
    same_as_torch("y = x / C", lambda x: x / x.shape[1], sizes=[(2, 3, 5), (1, 4, 2, 3)], inputs='x: [B, C, "*S"]')


BLOCK = """a = narrow(x, 2, 1, H - 1)
b = pad(a, [0, 0, 1, 0])
c = view(b, [B, C, H * W]) / (H * W)
y = interpolate(view(c, [B, C, H, W]), size=[H // 2, W])
"""


def ref_block(x):
    b_, c_, h, w = x.shape
    a = F.pad(x[:, :, 1:], [0, 0, 1, 0])
    return F.interpolate((a.reshape(b_, c_, h * w) / (h * w)).reshape(b_, c_, h, w), size=[h // 2, w])


def test_compile_export_and_trace_follow_the_input_size():
    built, gen, _ = modules(BLOCK)
    x1, x2 = torch.randn(2, 3, 8, 12), torch.randn(2, 3, 10, 6)
    compiled = torch.compile(built, fullgraph=True, dynamic=True)
    for x in (x1, x2):
        torch.testing.assert_close(compiled(x), ref_block(x))
    h, w = torch.export.Dim("H", min=4, max=64), torch.export.Dim("W", min=2, max=64)
    ep = torch.export.export(built, (x1,), dynamic_shapes={"x": {2: h, 3: w}})
    torch.testing.assert_close(ep.module()(x2), ref_block(x2))
    with warnings.catch_warnings():  # the tracer's notes on Python values
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(gen, (x1,), check_trace=False)
    for x in (x1, x2):
        torch.testing.assert_close(traced(x), ref_block(x))
    fx_traced = torch.fx.symbolic_trace(gen)
    torch.testing.assert_close(fx_traced(x2), ref_block(x2))


def test_parameters_in_a_size_expression_are_fixed_in_generated_code():
    spec = inline_spec(
        "y = narrow(x, 2, 0, H // reduction)", inputs=INPUTS, params="reduction: {type: int, default: 2}"
    )
    src = attndsl.generate(spec)
    assert "reduction" in src.split("Fixed in this file")[1].splitlines()[0]
    x = torch.randn(2, 3, 8, 5)
    torch.testing.assert_close(load_generated(src).Inline()(x), x[:, :, :4])
    with pytest.raises(ValueError, match="generated for"):
        load_generated(src).Inline(reduction=4)


# --- errors at the spec line ----------------------------------------------------------------------


def error_at(f, message, col_text, inputs=INPUTS):
    with pytest.raises(AttnDSLError, match=message) as e:
        graph(f, inputs=inputs)
    span = e.value.span
    assert span is not None and span.source_line.strip() in [ln.strip() for ln in f.splitlines()]
    assert span.source_line[span.col - 1 :].startswith(col_text), (span.source_line, span.col)
    return e.value


ERRORS = [
    ("fc = linear(W, 4)\ny = fc(x)", r"`W` is a run-time size; layer sizes must be parameters", "W, 4"),
    ("c = conv2d(8, 8, 3, padding=H // 2)\ny = c(x)", r"`floor\(H/2\)` is a run-time size; layer sizes", "padding="),
    ('p = param([H], init="zeros")\ny = x', "run-time size; layer sizes must be parameters", "[H]"),
    ("y = x\nfor i in range(H) {\n  y = y + 1\n}", r"`range` of the run-time size `H` is not supported", "range(H)"),
    ("y = x if H > 4 else -x", r"`H > 4` depends on run-time sizes; a condition must be known", "H > 4"),
    ("if W == H {\n  y = x\n} else {\n  y = -x\n}", "depends on run-time sizes", "W == H"),
    ("y = leaky_relu(x, slope=H)", r"`slope` must be known at compile time; `H` is a run-time size", "slope="),
    ("y = softmax(x, dim=H - 1)", r"`dim` must be known at compile time; `H - 1` is a run-time size", "dim="),
    ("y = narrow(x, 2, 0, H / 2)", r"`length` must be an integer, got `H/2`, which may not be one", "H / 2"),
    ("y = narrow(x, 2, 0, 1 - H)", r"`length` must be at least 1", "1 - H"),
    ("y = x * sqrt(H)", r"`sqrt` of the run-time size `H` is not supported", "sqrt(H)"),
    ("y = x * max(H, 2)", r"`max` of the run-time size `H` is not supported", "max(H, 2)"),
    ("y = x + eye(H)", r"`n` must be known at compile time; `H` is a run-time size", "H)"),
    ('y = x * (H + "a")', r"`\+` needs numbers, got a string", "H +"),
    ("y = view(x, [B, C, H])", r"cannot view \[B, C, H, W\] as \[B, C, H\]: element counts differ", "[B, C, H]"),
    ("y = view(x, [B, -1, -1])", "at most one -1", "[B, -1, -1]"),
    ("y = split(x, [H, W], dim=2)", r"`sizes` must be known at compile time; `H` is a run-time size", "[H, W]"),
    ("u = [x, x]\ny = u[H]", "run-time size; an index must be known at compile time", "H]"),
    ("y = narrow(x, 2, 0, H % 0)", "division by zero", "H % 0"),
]


@pytest.mark.parametrize("f, message, col", ERRORS, ids=[e[0].splitlines()[0] for e in ERRORS])
def test_errors_at_the_spec_line(f, message, col):
    error_at(f, message, col)


def test_error_hint_for_layer_sizes():
    e = error_at("fc = linear(H, 4)\ny = fc(x)", "layer sizes must be parameters", "H, 4")
    assert "parameter" in e.hint and "x: [B, channels, H, W]" in e.hint


# --- floor/ceil unification: divisibility a rearrange establishes --------------------------------

SPLIT = 'p = rearrange(x, "b c (h p) (w q) -> b (c p q) h w", p=4, q=4)'


def test_rearrange_split_unifies_with_pooling_and_strided_conv():
    f = 'y = rearrange(x, "b c (h p) (w q) -> b (c p q) h w", p=4, q=4) + avg_pool(x, 4, 4)'
    assert out_shape(f, inputs="x: [B, 1, H, W]") == ["B", "16", "H/4", "W/4"]

    def ref(x):
        b, _, h, w = x.shape
        r = x.reshape(b, 1, h // 4, 4, w // 4, 4).permute(0, 1, 3, 5, 2, 4).reshape(b, 16, h // 4, w // 4)
        return r + F.avg_pool2d(x, 4, 4)

    same_as_torch(f, ref, sizes=[(2, 1, 8, 12), (1, 1, 16, 4)], inputs="x: [B, 1, H, W]")
    # the other order, a strided conv, unfold with step 4, max_pool with ceil_mode
    assert out_shape(SPLIT + "\nc = conv2d(1, 16, 4, stride=4)\ny = c(x) * p", "x: [B, 1, H, W]")[2:] == [
        "floor(H/4)",
        "floor(W/4)",
    ]
    assert out_shape(SPLIT + "\ny = max_pool(x, 4, 4, ceil_mode=true) - p", "x: [B, 1, H, W]")[2:] == [
        "floor(H/4 - 1/4) + 1",
        "floor(W/4 - 1/4) + 1",
    ]
    assert (
        out_shape(
            's = rearrange(x, "b c (h p) w -> b c h p w", p=4)\n'
            "y = select(unfold(x, 2, 4, step=4), 4, 0) + select(s, 3, 0)"
        )[2]
        == "floor(H/4)"
    )


def test_divisibility_makes_floor_division_whole():
    # without the split H // 4 * 4 may be less than H: refused; after it, the element counts agree
    error_at("y = view(x, [B, C, H // 4, 4 * W])", "element counts differ", "[B, C")
    f = 's = rearrange(x, "b c (h p) w -> b c h p w", p=4)\ny = view(x, [B, C, H // 4, 4 * W])'
    same_as_torch(f, lambda x: x.reshape(x.shape[0], x.shape[1], x.shape[2] // 4, -1), sizes=[(2, 3, 8, 5)])
    # H / 4 is a size there too, computed with // at run time
    src = same_as_torch(
        's = rearrange(x, "b c (h p) w -> b c h p w", p=4)\ny = narrow(x, 2, 0, H / 4)',
        lambda x: x[:, :, : x.shape[2] // 4],
        sizes=[(2, 3, 8, 5), (1, 1, 4, 2)],
    )
    assert "H // 4" in src


def test_without_established_divisibility_floor_stays_apart():
    # no split at all
    error_at("y = avg_pool(x, 4, 4) + narrow(x, 2, 0, H / 4)", "may not be one", "H / 4")
    error_at("y = view(x, [B, C, H // 4, 4 * W])", "element counts differ", "[B, C")
    # a split by 2 does not make H a multiple of 4
    error_at(
        's = rearrange(x, "b c (h p) w -> b c h p w", p=2)\ny = view(x, [B, C, H // 4, 4 * W])',
        "element counts differ",
        "[B, C",
    )
    # a split of W says nothing about H
    error_at(
        's = rearrange(x, "b c h (w q) -> b c h w q", q=4)\ny = view(x, [B, C, H // 4, 4 * W])',
        "element counts differ",
        "[B, C",
    )
    # the divisibility a split establishes belongs to its graph: the next spec does not inherit it
    graph('s = rearrange(x, "b c (h p) w -> b c h p w", p=4)\ny = view(x, [B, C, H // 4, 4 * W])', inputs=INPUTS)
    error_at("y = view(x, [B, C, H // 4, 4 * W])", "element counts differ", "[B, C")


def test_divisibility_survives_passes_and_the_verifier():
    f = SPLIT + "\ny = p + avg_pool(x, 4, 4) * 1"
    spec = inline_spec(f, inputs="x: [B, 1, H, W]", example="{inputs: {x: [2, 1, 8, 8]}}")
    c = compile_spec(spec, check=True)  # the verifier rechecks shapes after every pass
    assert ("H", 4) in c.graph.meta["divisible"] and ("W", 4) in c.graph.meta["divisible"]
    m = attndsl.build(spec)
    x = torch.randn(2, 1, 8, 8)
    want = x.reshape(2, 1, 2, 4, 2, 4).permute(0, 1, 3, 5, 2, 4).reshape(2, 16, 2, 2) + F.avg_pool2d(x, 4, 4)
    torch.testing.assert_close(m(x), want)
    with pytest.raises(RuntimeError):  # the run-time reshape is what checks 4 | H
        m(torch.randn(2, 1, 9, 8))


def test_size_expressions_are_bounded():
    # sympy works on the whole expression: a loop that doubles it is refused at the limit, not run
    f = "n = H\nfor i in range(20) {\n  n = n * n + n\n}\ny = x * n"
    error_at(f, "a run-time size expression nests more than 12 operations", "n * n + n")
