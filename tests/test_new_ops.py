"""The ops new blocks need (issue 8): einsum, roll, comparisons and masks, masked_fill, avg_pool's
count_include_pad, gelu's tanh form, relative_position_index.

Each is checked the same three ways: the built module and the generated module against plain torch on
random inputs (forward, and gradient where the op has one), and bad arguments as attndsl errors at the
spec line. One spec using all of them also runs under torch.compile(fullgraph=True) and torch.export.
"""

import operator

import pytest
import torch
import torch.nn.functional as F

import attndsl
from attndsl.check import load_generated
from attndsl.errors import AttnDSLError
from attndsl.ops import OPS
from tests.helpers import graph, inline_spec

X = (2, 8, 5, 6)  # the inline spec's x: [B, channels, H, W]


def modules(f, **kw):
    """The built and the generated module of an inline spec (channels = 8)."""
    spec = inline_spec(f, **kw)
    src = attndsl.generate(spec)
    return attndsl.build(spec), load_generated(src).Inline(8), src


def same_as_torch(f, ref, inputs=None, grad=True, **kw):
    """Built and generated module agree with `ref` (plain torch) on random inputs, forward and gradient."""
    built, gen, _ = modules(f, **kw)
    torch.manual_seed(0)
    for _ in range(2):
        xs = inputs() if inputs else [torch.randn(*X, dtype=torch.float64)]
        want = ref(*[x.clone().requires_grad_(grad) for x in xs])
        for m in (built, gen):
            ins = [x.clone().requires_grad_(grad) for x in xs]
            got = m(*ins)
            torch.testing.assert_close(got, want.detach(), rtol=1e-12, atol=1e-12)
            if grad:
                w = torch.randn_like(got)
                gs = torch.autograd.grad((got * w).sum(), ins)
                xr = [x.clone().requires_grad_(True) for x in xs]
                gr = torch.autograd.grad((ref(*xr) * w).sum(), xr)
                for a, b in zip(gs, gr):
                    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def error_at(f, message, col_text, **kw):
    """Compiling `f` fails with `message`, and the caret points at `col_text` on the offending line."""
    with pytest.raises(AttnDSLError, match=message) as e:
        graph(f, **kw)
    span = e.value.span
    assert span is not None and span.source_line.strip() in [ln.strip() for ln in f.splitlines()]
    assert span.source_line[span.col - 1 :].startswith(col_text), (span.source_line, span.col)


# --- einsum -------------------------------------------------------------------------------------


def test_einsum_matches_torch():
    same_as_torch('y = einsum("bchw,bdhw->bcd", x, x)', lambda x: torch.einsum("bchw,bdhw->bcd", x, x))
    same_as_torch('y = einsum("bchw->bhwc", x)', lambda x: x.permute(0, 2, 3, 1))


def test_einsum_of_the_issue():
    # einsum("bnhwk,bkhwv->bnhwv", q, lam): two operands of different shapes, output inferred
    f = (
        'q = rearrange(x, "b (n k) h w -> b n h w k", n=2)\nl = rearrange(x, "b (k v) h w -> b k h w v", k=4)\n'
        'y = einsum("bnhwk,bkhwv->bnhwv", q, l)'
    )
    g = graph(f)
    out = g.node(g.outputs[0][1])["shape"]
    assert [str(d) for d in out] == ["B", "2", "H", "W", "2"]

    def ref(x):
        q = x.reshape(2, 2, 4, 5, 6).permute(0, 1, 3, 4, 2)
        lam = x.reshape(2, 4, 2, 5, 6).permute(0, 1, 3, 4, 2)
        return torch.einsum("bnhwk,bkhwv->bnhwv", q, lam)

    same_as_torch(f, ref)


def test_einsum_implicit_output_and_broadcast_of_one():
    g = graph('y = einsum("bchw,bchw", x, x)')  # implicit output: letters used once -> none: a scalar
    assert g.node(g.outputs[0][1])["shape"] == ()
    same_as_torch(
        'y = einsum("bchw,bcij->bchw", x, mean(x, dims=[H, W], keepdim=true))',
        lambda x: torch.einsum("bchw,bcij->bchw", x, x.mean((2, 3), keepdim=True)),
    )


@pytest.mark.parametrize(
    "f,message,at",
    [
        ('y = einsum("bchw,bdhw->bcd", x)', "2 input term", '"bchw'),
        ('y = einsum("bch,bdhw->bcd", x, x)', "term 'bch' names 3 axes, operand 1 has 4", '"bch,'),
        ('y = einsum("bchw,bdwh->bcd", x, x)', "axis 'w' is W in one place and H in another", "x)"),
        ('y = einsum("bchw,bdhw->bcz", x, x)', "output axis 'z' is in no input term", '"bchw'),
        ('y = einsum("bchw,bdhw->bcc", x, x)', "names an axis twice", '"bchw'),
        ('y = einsum("b...,b...->b", x, x)', "not supported", '"b...'),
        ('y = einsum("b1hw->b", x)', "subscripts are letters", '"b1hw'),
        ("y = einsum(3, x)", "must be a string", "3"),
        ('y = einsum("bcd->b", x, x)', r"1 input term\(s\) for 2 operand\(s\)", '"bcd'),
        ('y = einsum("bchw->b", 2)', "must be a tensor", "2"),
    ],
)
def test_einsum_errors_point_at_the_argument(f, message, at):
    error_at(f, message, at)


def test_einsum_refuses_a_variadic_operand():
    error_at('y = einsum("bc->b", x)', "fixed-rank operands", "x)", inputs='x: [B, channels, "*S"]')


def test_einsum_checks_symbolic_sizes():
    # H and W are different symbols: contracting one against the other is refused at compile time
    error_at('y = einsum("bchw,bcwh->bc", x, x)', "is W in one place and H", "x)")
    # a size computed from parameters agrees with the same size written differently
    graph('y = einsum("bchw,bdhw->bcd", x, avg_pool(x, 1))')


# --- roll ---------------------------------------------------------------------------------------


def test_roll_matches_torch():
    same_as_torch("y = roll(x, [-1, 2], dims=[H, W])", lambda x: torch.roll(x, (-1, 2), (2, 3)))
    same_as_torch("y = roll(x, -3, dims=-1)", lambda x: torch.roll(x, -3, -1))
    # an int shift applies to every axis listed; `spatial` lists the axes after channels
    same_as_torch("y = roll(x, 2, dims=spatial)", lambda x: torch.roll(x, (2, 2), (2, 3)))
    same_as_torch("y = roll(x, [1, -4], dims=spatial)", lambda x: torch.roll(x, (1, -4), (2, 3)))
    # Swin's shifted windows with a shift from a parameter
    same_as_torch(
        "y = roll(x, [-s, -s], dims=[2, 3])",
        lambda x: torch.roll(x, (-2, -2), (2, 3)),
        params="s: {type: int, default: 2}",
    )


def test_roll_on_a_variadic_input():
    spec_inputs = 'x: [B, channels, "*S"]'
    built, gen, _ = modules("y = roll(x, 1, dims=1)", inputs=spec_inputs)
    for shape in [(2, 8, 7), (2, 8, 3, 4, 5)]:
        x = torch.randn(*shape)
        for m in (built, gen):
            torch.testing.assert_close(m(x), torch.roll(x, 1, 1))
    # the variadic run itself has no fixed axes to name
    error_at("y = roll(x, 1, dims=spatial)", "needs fixed axes", "dims=spatial", inputs=spec_inputs)


@pytest.mark.parametrize(
    "f,message,at",
    [
        ("y = roll(x, [1, 2], dims=2)", "one shift per axis", "[1, 2]"),
        ("y = roll(x, [1, 2, 3], dims=spatial)", "one shift per axis", "[1, 2, 3]"),
        ("y = roll(x, [1, 2], dims=[2])", "one shift per axis", "[1, 2]"),
        ("y = roll(x, 1.5, dims=2)", "must be an integer", "1.5"),
        ("y = roll(x, 1, dims=4)", "out of range", "dims=4"),
        ("y = roll(x, [1, 1], dims=[H, H])", "listed twice", "dims=[H, H]"),
        ("y = roll(x, x, dims=2)", "must be known at compile time", "x, dims"),
    ],
)
def test_roll_errors(f, message, at):
    error_at(f, message, at)


# --- comparisons and masks ----------------------------------------------------------------------


def _mask(m):
    return m.to(torch.float64)


@pytest.mark.parametrize(
    "sym,fn",
    [
        ("<", operator.lt),
        ("<=", operator.le),
        (">", operator.gt),
        (">=", operator.ge),
        ("==", operator.eq),
        ("!=", operator.ne),
    ],
)
def test_comparisons_give_float_masks(sym, fn):
    # tensor with tensor, tensor with number, number with tensor; exact ties appear through round()
    same_as_torch(
        f"y = (x {sym} mean(x, dims=1, keepdim=true)) + (x {sym} 0.5) + (0 {sym} x)",
        lambda x: _mask(fn(x, x.mean(1, keepdim=True))) + _mask(fn(x, 0.5)) + _mask(fn(0, x)),
        grad=False,
    )
    g = graph(f"y = x {sym} 0")
    assert g.node(g.outputs[0][1])["dtype"] == "float"


def test_mask_dtype_follows_the_input():
    built, gen, _ = modules("y = x > 0")
    for m in (built, gen):
        for dt in (torch.float32, torch.float64):
            assert m(torch.randn(*X, dtype=dt)).dtype == dt


def test_where_with_a_comparison():
    same_as_torch("y = where(x > 0, x, 0.1 * x)", lambda x: torch.where(x > 0, x, 0.1 * x))


def test_masked_fill():
    same_as_torch("y = masked_fill(x, x <= 0.5, -1e4)", lambda x: x.masked_fill(x <= 0.5, -1e4))
    # a mask that broadcasts: one per position, shared over channels
    same_as_torch(
        "y = masked_fill(x, mean(x, dims=1, keepdim=true) > 0, 0)",
        lambda x: x.masked_fill(x.mean(1, keepdim=True) > 0, 0),
    )


def test_logical_ops_on_masks():
    same_as_torch(
        "y = where((x > -1 and x < 1) or not x != 0, x, 0 * x)",
        lambda x: torch.where(((x > -1) & (x < 1)) | ~(x != 0), x, 0 * x),
    )
    # any nonzero counts as true, as in where
    same_as_torch(
        "y = (x and relu(x)) + (not relu(x))",
        lambda x: _mask((x != 0) & (x.relu() != 0)) + _mask(x.relu() == 0),
        grad=False,
    )


def test_attention_mask_from_ids():
    # the issue's `ids_i != ids_j`: a block-diagonal mask from group ids, applied before softmax
    f = """
    ids = floordiv(arange_like(x, dim=-1), 2)
    m = unsqueeze(ids, 1) != unsqueeze(ids, 0)
    y = softmax(masked_fill(x @ transpose(x, 2, 3) / 8, m, -1e9), dim=-1)
    """
    g = "x: [B, channels, H, H]"

    def ref(x):
        ids = torch.arange(x.shape[-1], dtype=x.dtype) // 2
        m = ids[:, None] != ids[None, :]
        return torch.softmax((x @ x.transpose(2, 3) / 8).masked_fill(m, -1e9), -1)

    built, gen, _ = modules(f, inputs=g, example="{params: {channels: 8}, inputs: {x: [2, 8, 6, 6]}}")
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64, requires_grad=True)
    for m in (built, gen):
        torch.testing.assert_close(m(x), ref(x))


@pytest.mark.parametrize(
    "f,message,at",
    [
        ("y = x > [1, 2]", "`>` needs tensors or numbers, got a list", "x > [1, 2]"),
        ("y = x and 1", "`and` needs two masks, got a number", "x and 1"),
        ("y = where(x > 0, x, x @ x)", "matmul inner sizes differ", "x @ x"),
        ("y = masked_fill(x, x > 0, x)", "must be known at compile time", "x)"),
        ("y = masked_fill(x, 1, 0)", "`mask` must be a tensor", "1,"),
        ("y = masked_fill(mean(x, dims=1), x > 0, 0)", "does not broadcast to x", "x > 0"),
        ('y = masked_fill(x, x > 0, "a")', "`value` must be a number", '"a"'),
        ("y = (x > 0) + (mean(x, dims=1) > 0)", "do not broadcast", "(x > 0) +"),
    ],
)
def test_mask_errors(f, message, at):
    error_at(f, message, at)


def test_comparing_parameters_stays_static():
    # a comparison of compile-time values is still a compile-time condition
    g = graph("y = x if channels > 4 else -x")
    assert "neg" not in [g.node(n)["op"] for n in g.order()]


# --- avg_pool(count_include_pad=false) ----------------------------------------------------------------


def test_avg_pool_count_include_pad_false():
    same_as_torch(
        "y = avg_pool(x, 3, 1, 1, count_include_pad=false)", lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    )
    same_as_torch(
        "y = avg_pool(x, [3, 5], 2, [1, 2], count_include_pad=false)",
        lambda x: F.avg_pool2d(x, (3, 5), 2, (1, 2), count_include_pad=False),
    )
    # the issue's workaround gives the same: pool(x) / pool(ones)
    same_as_torch(
        "y = avg_pool(x, 3, 1, 1) / avg_pool(full_like(x, 1), 3, 1, 1)",
        lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
    )


def test_avg_pool_count_include_pad_false_on_a_variadic_input():
    built, gen, _ = modules("y = avg_pool(x, 3, 1, 1, count_include_pad=false)", inputs='x: [B, channels, "*S"]')
    for shape, fn in [((2, 8, 7), F.avg_pool1d), ((2, 8, 5, 6), F.avg_pool2d), ((2, 8, 3, 4, 5), F.avg_pool3d)]:
        x = torch.randn(*shape)
        for m in (built, gen):
            torch.testing.assert_close(m(x), fn(x, 3, 1, 1, count_include_pad=False))


def test_avg_pool_default_keeps_the_ir():
    g = graph("y = avg_pool(x, 3, 1, 1)")
    n = next(g.node(i) for i in g.order() if g.node(i)["op"] == "avg_pool")
    assert "count_include_pad" not in n["attrs"]


def test_count_include_pad_is_avg_pool_only():
    error_at("y = max_pool(x, 3, 1, 1, count_include_pad=false)", "count_include_pad", "max_pool")


# --- gelu(approximate="tanh") -------------------------------------------------------------------


def test_gelu_tanh():
    same_as_torch('y = gelu(x, approximate="tanh")', lambda x: F.gelu(x, approximate="tanh"))
    same_as_torch("y = gelu(x)", F.gelu)
    _, _, src = modules('y = gelu(x, approximate="tanh")')
    assert "approximate='tanh'" in src


def test_gelu_approximate_errors():
    error_at('y = gelu(x, approximate="fast")', "must be one of none, tanh", 'approximate="fast"')
    error_at("y = gelu(x, approximate=x)", "must be known at compile time", "approximate=x")


# --- relative_position_index --------------------------------------------------------------------


def swin_index(h, w):
    """Swin's relative_position_index, written as its paper's code does."""
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    return rel.sum(-1)


@pytest.mark.parametrize("h,w", [(1, 1), (3, 3), (5, 6), (7, 2)])
def test_relative_position_index_is_swins(h, w):
    from attndsl.runtime import relative_position_index

    idx = relative_position_index(h, w)
    assert idx.dtype == torch.long and idx.shape == (h * w, h * w)
    assert torch.equal(idx, swin_index(h, w))
    assert idx.min() == 0 and idx.max() == (2 * h - 1) * (2 * w - 1) - 1


def test_relative_position_bias_block():
    # Swin's bias: table[(2h-1)(2w-1), heads] gathered by the index into [heads, N, N], added to the logits
    f = """
    table = param([(2 * H - 1) * (2 * W - 1), heads], init="normal")
    idx = relative_position_index(H, W)
    bias = rearrange(index_select(table, 0, flatten(idx, 0)), "(i j) n -> n i j", i=H * W)
    t = rearrange(x, "b (n d) h w -> b n (h w) d", n=heads)
    y = softmax(t @ transpose(t, 2, 3) + bias, dim=-1)
    """
    p = "H: {type: int, default: 3}\nW: {type: int, default: 4}\nheads: {type: int, default: 2}"
    built, gen, src = modules(
        f, params=p, inputs="x: [B, channels, H, W]", example="{params: {channels: 8}, inputs: {x: [2, 8, 3, 4]}}"
    )
    assert list(built.state_dict()) == list(gen.state_dict())
    gen.load_state_dict(built.state_dict())
    assert "relative_position_index(H, W)" in src  # the buffer follows the constructor's parameters
    table = built.state_dict()["table"]
    x = torch.randn(2, 8, 3, 4)

    def ref(x):
        t = x.reshape(2, 2, 4, 12).transpose(2, 3)
        bias = table[swin_index(3, 4).flatten()].reshape(12, 12, 2).permute(2, 0, 1)
        return torch.softmax(t @ t.transpose(2, 3) + bias, -1)

    for m in (built, gen):
        torch.testing.assert_close(m(x), ref(x))


def test_relative_position_index_follows_the_constructor():
    # a buffer's sizes stay parameters of the generated class, as window_index's
    p = "h: {type: int, default: 3}\nw: {type: int, default: 4}"
    built, gen, src = modules("idx = relative_position_index(h, w)\ny = x + 0 * mean(idx * 1.0)", params=p)
    assert torch.equal(built.idx, swin_index(3, 4)) and torch.equal(gen.idx, swin_index(3, 4))
    other = load_generated(src).Inline(8, h=5, w=2)
    assert torch.equal(other.idx, swin_index(5, 2))


def test_relative_position_index_errors():
    error_at("y = x + mean(relative_position_index(0, 3))", "must be at least 1", "0")
    error_at("y = x + mean(relative_position_index(x, 3))", "must be known at compile time", "x, 3")
    error_at("y = x + mean(relative_position_index(2000, 2000))", "over the limit", "relative_position_index")


# --- every new op in one module: torch.compile, torch.export, fx, the op list ----------------------

ALL = """
a = einsum("bchw,bdhw->bcd", x, x)
r = roll(x, [-1, 2], dims=[H, W])
m = (r > 0 and x < 1) or not x != 0
p = avg_pool(masked_fill(r, m, 0.5), 3, 1, 1, count_include_pad=false)
y = gelu(where(m, p, x), approximate="tanh") + unsqueeze(mean(a, dims=[1, 2]), like=x)
"""


def _all_ref(x):
    a = torch.einsum("bchw,bdhw->bcd", x, x)
    r = torch.roll(x, (-1, 2), (2, 3))
    m = ((r > 0) & (x < 1)) | ~(x != 0)
    p = F.avg_pool2d(r.masked_fill(m, 0.5), 3, 1, 1, count_include_pad=False)
    return F.gelu(torch.where(m, p, x), approximate="tanh") + a.mean((1, 2))[:, None, None, None]


def test_all_new_ops_together():
    same_as_torch(ALL, _all_ref)


def test_all_new_ops_compile_fullgraph_and_export():
    built, gen, _ = modules(ALL)
    x = torch.randn(*X)
    want = _all_ref(x)
    for m in (built, gen):
        torch._dynamo.reset()
        torch.testing.assert_close(torch.compile(m, fullgraph=True)(x), want)
    ep = torch.export.export(built, (x,))
    torch.testing.assert_close(ep.module()(x), want)


def test_all_new_ops_trace_and_pickle():
    import pickle

    built, gen, _ = modules(ALL)
    x = torch.randn(*X)
    traced = torch.fx.symbolic_trace(built)  # leaf helpers stay one node each
    torch.testing.assert_close(traced(x), built(x))
    traced_gen = torch.fx.symbolic_trace(gen)  # generated code wraps them with torch.fx.wrap
    gen.load_state_dict(built.state_dict())
    torch.testing.assert_close(traced_gen(x), built(x))
    torch.testing.assert_close(pickle.loads(pickle.dumps(built))(x), built(x))


def test_new_ops_are_listed():
    for name in (
        "einsum",
        "roll",
        "lt",
        "le",
        "gt",
        "ge",
        "eq",
        "ne",
        "logical_and",
        "logical_or",
        "logical_not",
        "masked_fill",
        "gelu",
        "avg_pool",
        "relative_position_index",
    ):
        assert name in OPS and OPS[name].doc, name
    assert "approximate" in OPS["gelu"].signature.parameters
    assert "count_include_pad" in OPS["avg_pool"].signature.parameters


def test_new_ops_are_counted_by_profile():
    from attndsl.costs import profile

    spec = inline_spec(ALL)
    for device in ("meta", "cpu"):
        p = profile(spec, {"x": list(X)}, device=device, channels=8)
        assert not p.uncounted, p.uncounted
        ein = next(n for n in p.nodes if n.family == "einsum")
        assert ein.own == 2 * 2 * 8 * 8 * 5 * 6  # b c d h w, a multiply and an add each
        assert all(n.own == n.torch for n in p.nodes if n.torch), [n for n in p.nodes if n.torch != n.own]


# --- symbolic sizes as output sizes ---------------------------------------------------------------


def test_symbolic_output_sizes_of_interpolate_and_adaptive_pool():
    # the issue's `interpolate(avg_pool(x, 2, 2), size=[H, W])` followed by a product
    f = "y = x * interpolate(avg_pool(x, 2, 2), size=[H, W]) + adaptive_avg_pool(x, [H, 1])"
    g = graph(f)
    assert [str(d) for d in g.node(g.outputs[0][1])["shape"]] == ["B", "8", "H", "W"]
    built, gen, src = modules(f)
    assert "x.size(2)" in src and "x.size(3)" in src
    for shape in [(2, 8, 6, 4), (1, 8, 10, 8)]:
        x = torch.randn(*shape)
        want = x * F.interpolate(F.avg_pool2d(x, 2, 2), size=shape[2:]) + F.adaptive_avg_pool2d(x, (shape[2], 1))
        for m in (built, gen):
            torch.testing.assert_close(m(x), want)
    x = torch.randn(2, 8, 8, 6)
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(built, fullgraph=True)(x), built(x))


def test_symbolic_output_size_from_a_second_input():
    # the size of another input's axis: upsample y to x's resolution
    f = 'y = x + interpolate(z, size=[H, W], mode="bilinear")'
    built, gen, _ = modules(
        f,
        inputs="x: [B, channels, H, W]\nz: [B, channels, h, w]",
        example="{params: {channels: 8}, inputs: {x: [2, 8, 6, 4], z: [2, 8, 3, 2]}}",
    )
    x, z = torch.randn(2, 8, 6, 4), torch.randn(2, 8, 3, 2)
    want = x + F.interpolate(z, size=(6, 4), mode="bilinear")
    for m in (built, gen):
        torch.testing.assert_close(m(x, z), want)


def test_symbolic_output_size_errors():
    error_at('y = interpolate(x, size=["H W", 3])', "takes sizes", 'size=["H W"')
    error_at("y = interpolate(x, size=[0, 3])", "must be at least 1", "size=[0")
    with pytest.raises(AttnDSLError, match="size `Q` is no axis of an input") as e:
        attndsl.build(inline_spec('y = interpolate(x, size=["Q", 3])'))
    assert e.value.span is not None and "interpolate" in e.value.span.source_line


def test_a_mask_of_an_index_buffer_is_float():
    # long buffers compare to a mask in the default float dtype: usable in arithmetic with x
    p = "h: {type: int, default: 2}\nw: {type: int, default: 3}"
    f = "m = relative_position_index(h, w) != 2 * w + 1\ny = x + 0 * mean(m) + sum(m and not m)"
    built, gen, _ = modules(f, params=p)
    x = torch.randn(*X)
    m = (swin_index(2, 3) != 7).float()
    assert m.sum() == 30  # the diagonal (i == j) is index (h-1)(2w-1) + w-1 = 7
    for mod in (built, gen):
        torch.testing.assert_close(mod(x), x + 0 * m.mean())
