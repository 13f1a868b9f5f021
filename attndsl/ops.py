"""The op registry: every builtin of the language and its shape rule.

Input: tensor operands as `T` (shape and span) and static arguments as Python
values. Output: an `Out` (operand list, normalised attributes, result shape).
This module needs no torch; `lowering.py` gives each op its torch meaning.
Entry points: `OPS`, `LAYERS`, `op`, `layer`.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import sympy

from .limits import MAX_ELEMENTS, MAX_LOOP_TRIPS, LimitExceeded
from .shapes import Pack, broadcast, dim_eq, fmt_shape, is_one, norm, numel, split_pack, sym


@dataclass
class T:
    """A tensor operand during shape inference."""
    nid: int
    shape: tuple
    span: object = None


@dataclass
class Out:
    inputs: list
    shape: tuple
    attrs: dict = field(default_factory=dict)
    n_outputs: int = 0          # > 0: a tuple of that many tensors, shapes in `shapes`
    shapes: list = field(default_factory=list)
    dtype: str = "float"


class OpError(Exception):
    """A shape or argument problem inside an op; the frontend adds the span."""

    def __init__(self, message: str, arg: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.arg, self.hint = arg, hint


@dataclass
class OpDef:
    name: str
    fn: object
    doc: str
    pure: bool = True           # False: never merged by CSE (random, or updates state)
    signature: object = None


OPS: dict[str, OpDef] = {}
LAYERS: dict[str, OpDef] = {}


def _register(table, name, fn, pure=True):
    table[name] = OpDef(name, fn, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
                        pure, inspect.signature(fn))
    return fn


def op(*names, pure=True):
    def deco(fn):
        for n in names or (fn.__name__.rstrip("_"),):
            _register(OPS, n, fn, pure)
        return fn
    return deco


def layer(*names):
    def deco(fn):
        for n in names or (fn.__name__.rstrip("_"),):
            _register(LAYERS, n, fn)
        return fn
    return deco


# --- helpers -----------------------------------------------------------------------

def need_tensor(x, arg="x"):
    if not isinstance(x, T):
        raise OpError(f"`{arg}` must be a tensor, got {type(x).__name__} {x!r}", arg)
    return x


def need_int(v, arg, minimum=None):
    if isinstance(v, bool) or not isinstance(v, int):
        raise OpError(f"`{arg}` must be an integer, got {v!r}", arg)
    if minimum is not None and v < minimum:
        raise OpError(f"`{arg}` must be at least {minimum}, got {v}", arg)
    return v


def _choice(v, choices, arg):
    if v not in choices:
        raise OpError(f"`{arg}` must be one of {', '.join(choices)}, got {v!r}", arg, "see `attndsl ops`")
    return v


def need_rank(x: T, ranks, what: str, arg="x"):
    pre, pack, suf = split_pack(x.shape)
    if pack is not None or len(x.shape) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise OpError(f"{what} needs a rank-{want} input, got {fmt_shape(x.shape)}", arg)


def resolve_axis(shape, d, arg="dim"):
    """Normalise an axis reference.

    An int (negative counts from the end) or the name of a symbolic size
    (`H`, `T`...) that labels exactly one axis. In a shape with a pack, prefix
    axes are >= 0 and suffix axes < 0; a pack-free shape gives ints >= 0.
    """
    pre, pack, suf = split_pack(shape)
    if isinstance(d, str):
        hits = [i for i, s in enumerate(shape) if not isinstance(s, Pack) and str(s) == d]
        if len(hits) != 1:
            raise OpError(f"axis `{d}` {'is ambiguous' if hits else 'is not'} in shape {fmt_shape(shape)}", arg,
                          "name an axis by its symbolic size, or use an integer")
        d = hits[0]
    if isinstance(d, bool) or not isinstance(d, int):
        raise OpError(f"`{arg}` must be an axis (an integer or a size name), got {d!r}", arg)
    if pack is None:
        r = len(shape)
        if not -r <= d < r:
            raise OpError(f"axis {d} is out of range for shape {fmt_shape(shape)}", arg)
        return d % r
    if 0 <= d < len(pre):
        return d
    if -len(suf) <= d < 0:
        return d
    if d >= 0 and d > len(pre) and suf:
        idx = d - len(pre) - 1
        if idx < len(suf):
            raise OpError(f"axis {d} lies after the variadic part of {fmt_shape(shape)}; count it from the end", arg)
    raise OpError(f"axis {d} is not a fixed axis of {fmt_shape(shape)}", arg,
                  "use `spatial` for the variadic axes")


def _pack_axes(pre, suf, start=0):
    """Axis refs of a variadic shape from prefix axis `start` on: prefix ints, "S", negative suffix ints."""
    return list(range(start, len(pre))) + ["S"] + [-i for i in range(len(suf), 0, -1)]


def resolve_axes(shape, dims, arg="dims"):
    """A list of axes; `spatial` selects every axis after channels, the pack's name its variadic run."""
    pre, pack, suf = split_pack(shape)
    if dims is None:
        return tuple(range(len(shape))) if pack is None else tuple(_pack_axes(pre, suf))
    out = []
    for d in (list(dims) if isinstance(dims, (list, tuple)) else [dims]):
        if pack is not None and d == pack.name:
            out.append("S")
        elif d == "spatial" and pack is not None:
            out += _pack_axes(pre, suf, start=2)
        elif d == "spatial":
            if len(shape) < 3:
                raise OpError(f"`spatial` needs a [B, C, ...] input with spatial axes, got {fmt_shape(shape)}", arg)
            out += list(range(2, len(shape)))
        else:
            out.append(resolve_axis(shape, d, arg))
    if len(set(out)) != len(out):
        raise OpError(f"axis listed twice in {dims!r}", arg)
    return tuple(out)


def drop_axes(shape, axes, keepdim):
    pre, pack, suf = split_pack(shape)
    out = []
    for i, s in enumerate(shape):
        if isinstance(s, Pack):
            key = "S"
        elif pack is not None and i > len(pre):
            key = i - len(shape)
        else:
            key = i
        if key in axes:
            if keepdim:
                out.append(Pack(s.name, True) if isinstance(s, Pack) else 1)
        else:
            out.append(s)
    return tuple(out)


def axis_size(shape, a):
    return shape[a] if isinstance(a, int) else None


def conv_out(size, k, s, p, d):
    return norm(sympy.floor((sympy.sympify(size) + 2 * p - d * (k - 1) - 1) / s) + 1)


def sizes_n(v, n, arg):
    """n output sizes: positive ints, or names of symbolic sizes (`size=[H, W]`) read from the inputs at run time."""
    out = tuple_n(v, n, arg)
    for d in out:
        if isinstance(d, str):
            if not d.isidentifier():
                raise OpError(f"`{arg}` takes sizes: integers or symbolic sizes such as H, got {d!r}", arg)
        else:
            need_int(d, arg, 1)
    return tuple(sym(d) if isinstance(d, str) else d for d in out)


def tuple_n(v, n, arg):
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise OpError(f"`{arg}` needs {n} values, got {len(v)}", arg)
        return tuple(v)
    return (v,) * n


# --- elementwise -----------------------------------------------------------------------

UNARY = ("relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "abs", "silu",
         "softplus", "square", "hardsigmoid", "neg", "sign", "elu", "relu6", "hardswish")


def _unary(x):
    """Elementwise function of one tensor."""
    need_tensor(x)
    return Out([x], x.shape)


for _n in UNARY:
    _register(OPS, _n, _unary)


@op("gelu")
def gelu(x, approximate="none"):
    """GELU, exact (erf) or with approximate="tanh" (as torch's F.gelu)."""
    need_tensor(x)
    # the exact form keeps no attribute, so IR dumps of existing specs do not change
    return Out([x], x.shape, {} if _choice(approximate, ("none", "tanh"), "approximate") == "none"
               else {"approximate": approximate})


@op("leaky_relu")
def leaky_relu(x, slope=0.01):
    """Leaky ReLU with the given negative slope."""
    need_tensor(x)
    return Out([x], x.shape, {"slope": float(slope)})


@op("clamp")
def clamp(x, min=None, max=None):
    """Clamp into [min, max]."""
    need_tensor(x)
    return Out([x], x.shape, {"min": min, "max": max})


BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")


def _binary(a, b):
    """Elementwise arithmetic with broadcasting; either side may be a scalar."""
    shapes = [v.shape for v in (a, b) if isinstance(v, T) and v.shape is not None]
    if not shapes:
        return Out([a, b], None)
    out = shapes[0]
    for s in shapes[1:]:
        r = broadcast(out, s)
        if r is None:
            raise OpError(f"shapes {fmt_shape(a.shape)} and {fmt_shape(b.shape)} do not broadcast",
                          hint="use unsqueeze(s, like=x) or rearrange to line up the axes")
        out = r
    return Out([a, b], out)


for _n in BINARY:
    _register(OPS, _n, _binary)
# scalar arithmetic that only static (parameter) expressions produce
for _n in ("floordiv", "mod"):
    _register(OPS, _n, _binary)


@op("matmul")
def matmul(a, b):
    """Batched matrix product: [..., n, k] @ [..., k, m] -> [..., n, m]."""
    need_tensor(a, "a"), need_tensor(b, "b")
    sa, sb = a.shape, b.shape
    if len(sa) < 2 or len(sb) < 2 or split_pack(sa)[1] or split_pack(sb)[1]:
        raise OpError(f"matmul needs fixed-rank operands of rank >= 2, got {fmt_shape(sa)} @ {fmt_shape(sb)}")
    if not dim_eq(sa[-1], sb[-2]):
        raise OpError(f"matmul inner sizes differ: {fmt_shape(sa)} @ {fmt_shape(sb)}",
                      hint="transpose one side so the contracted axes match")
    batch = broadcast(sa[:-2], sb[:-2])
    if batch is None:
        raise OpError(f"matmul batch axes do not broadcast: {fmt_shape(sa)} @ {fmt_shape(sb)}")
    return Out([a, b], batch + (sa[-2], sb[-1]))


def _einsum_terms(equation, ranks):
    """The input terms and output term of an einsum equation, checked against the operands' ranks."""
    if not isinstance(equation, str):
        raise OpError(f"`equation` must be a string such as \"bij,bjk->bik\", got {equation!r}", "equation")
    eq = equation.replace(" ", "")
    if "." in eq:
        raise OpError("`...` is not supported; name every axis", "equation")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    for t in terms + [out]:
        if not all("a" <= c <= "z" or "A" <= c <= "Z" for c in t):
            raise OpError(f"subscripts are letters, got {t!r} in {equation!r}", "equation")
    if len(terms) != len(ranks):
        raise OpError(f"{equation!r} has {len(terms)} input term(s) for {len(ranks)} operand(s)",
                      "equation")
    for i, (t, r) in enumerate(zip(terms, ranks)):
        if len(t) != r:
            raise OpError(f"term {t!r} names {len(t)} axes, operand {i + 1} has {r}", "equation")
    if not arrow:       # implicit output, as torch: the letters used once, in alphabetical order
        seen = "".join(terms)
        out = "".join(sorted(c for c in set(seen) if seen.count(c) == 1))
    if len(set(out)) != len(out):
        raise OpError(f"output {out!r} names an axis twice", "equation")
    missing = [c for c in out if c not in "".join(terms)]
    if missing:
        raise OpError(f"output axis {missing[0]!r} is in no input term", "equation")
    return terms, out


@op("einsum")
def einsum(equation, a, b=None):
    """Einstein summation of one or two tensors: einsum("bnhwk,bkhwv->bnhwv", q, lam); sizes of a letter must agree (or be 1)."""
    xs = [need_tensor(a, "a")] + ([need_tensor(b, "b")] if b is not None else [])
    for v, arg in zip(xs, "ab"):
        if split_pack(v.shape)[1] is not None:
            raise OpError(f"einsum needs fixed-rank operands, got {fmt_shape(v.shape)}", arg,
                          "flatten or rearrange the variadic axes first")
    terms, out = _einsum_terms(equation, [len(v.shape) for v in xs])
    sizes = {}
    for t, v, arg in zip(terms, xs, "ab"):
        for c, d in zip(t, v.shape):
            r = broadcast((sizes[c],), (d,)) if c in sizes else (d,)
            if r is None:
                raise OpError(f"axis {c!r} is {sizes[c]} in one place and {d} in another "
                              f"({equation!r} on {' and '.join(fmt_shape(x.shape) for x in xs)})", arg)
            sizes[c] = r[0]
    return Out(xs, tuple(sizes[c] for c in out), {"equation": ",".join(terms) + "->" + out})


@op("where")
def where(cond, a, b):
    """Select a where cond is nonzero, else b."""
    need_tensor(cond, "cond")
    r = _binary(a, b).shape
    r = broadcast(cond.shape, r) if r is not None else cond.shape
    if r is None:
        raise OpError("where: operands do not broadcast")
    return Out([cond, a, b], r)


# masks are float tensors like every other: 1.0 where true, 0.0 where false; `where`, `masked_fill` and
# the logical ops read any nonzero entry as true
COMPARISONS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


def _comparison(sym):
    def compare(a, b):
        if not any(isinstance(v, T) for v in (a, b)):
            raise OpError("a comparison needs at least one tensor", "a")
        return _binary(a, b)
    compare.__doc__ = f"Mask of a {sym} b, elementwise with broadcasting: 1.0 where true, 0.0 where false (no gradient)."
    return compare


for _n, _sym in COMPARISONS.items():
    _register(OPS, _n, _comparison(_sym))


def _logical(word):
    def logical(a, b):
        need_tensor(a, "a"), need_tensor(b, "b")
        return _binary(a, b)
    logical.__doc__ = f"Mask of `a {word} b` for masks a, b (nonzero is true): 1.0 or 0.0, no gradient."
    return logical


for _n in ("and", "or"):
    _register(OPS, f"logical_{_n}", _logical(_n))


@op("logical_not")
def logical_not(x):
    """1.0 where x is zero, 0.0 elsewhere (`not mask`); no gradient."""
    need_tensor(x)
    return Out([x], x.shape)


@op("masked_fill")
def masked_fill(x, mask, value):
    """x with `value` (a number) wherever mask is nonzero; the mask broadcasts to x's shape."""
    need_tensor(x), need_tensor(mask, "mask")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OpError(f"`value` must be a number, got {value!r}", "value")
    if broadcast(x.shape, mask.shape) != tuple(x.shape):
        raise OpError(f"masked_fill: mask {fmt_shape(mask.shape)} does not broadcast to x {fmt_shape(x.shape)}",
                      "mask")
    return Out([x, mask], x.shape, {"value": float(value)})


# --- reductions and normalisations ----------------------------------------------------------

REDUCTIONS = ("sum", "mean", "amax", "amin", "logsumexp", "prod")


def _reduce(x, dims=None, keepdim=False):
    """Reduce over axes (`spatial` for all axes after channels)."""
    need_tensor(x)
    if x.shape is None:         # a runtime number (numel): max(n - 1, 1) would otherwise crash in resolve_axes
        raise OpError("reductions and max/min of a runtime number (numel) are not supported", "x",
                      "clamp a tensor instead: clamp(t, min=1)")
    axes = resolve_axes(x.shape, dims)
    return Out([x], drop_axes(x.shape, axes, keepdim), {"dims": axes, "keepdim": bool(keepdim)})


for _n in REDUCTIONS:
    _register(OPS, _n, _reduce)


@op("max", "min")
def max_(x, dims=None, keepdim=False):
    """Tensor max/min over axes (the static max/min of numbers is a builtin too)."""
    return _reduce(x, dims, keepdim)


REDUCE_KINDS = {"avg": "mean", "mean": "mean", "max": "amax", "amax": "amax", "min": "amin", "amin": "amin",
                "sum": "sum", "lse": "logsumexp", "logsumexp": "logsumexp", "lp": "l2", "l2": "l2"}


@op("reduce")
def reduce_(x, kind, dims=None, keepdim=False):
    """Reduce over axes by a named kind (a str parameter): avg, max, min, sum, lse, lp (L2: sqrt of sum of squares)."""
    if kind not in REDUCE_KINDS:
        raise OpError(f"unknown reduction kind {kind!r}", "kind", f"kinds: {', '.join(REDUCE_KINDS)}")
    out = _reduce(x, dims, keepdim)
    out.attrs["kind"] = REDUCE_KINDS[kind]
    return out


@op("var", "std")
def var(x, dims=None, keepdim=False, unbiased=True):
    """Variance or standard deviation over axes; unbiased (n-1) by default, as torch."""
    out = _reduce(x, dims, keepdim)
    out.attrs["unbiased"] = bool(unbiased)
    return out


@op("cov")
def cov(x, unbiased=True):
    """Covariance of the rows of x [..., d, n] over its last axis (a batched torch.cov): [..., d, d]."""
    need_tensor(x)
    if len(x.shape) < 2 or split_pack(x.shape)[1] is not None:
        raise OpError(f"cov needs a fixed-rank input [..., d, n], got {fmt_shape(x.shape)}",
                      hint="flatten the observation axes into the last one first: flatten(x, 2)")
    return Out([x], x.shape[:-1] + (x.shape[-2],), {"unbiased": bool(unbiased)})


@op("numel")
def numel_op(x, dims=None):
    """Number of elements of x over axes (all by default; `spatial`: the positions), a runtime number: z / numel(x, dims=spatial)."""
    need_tensor(x)
    return Out([x], None, {"dims": resolve_axes(x.shape, dims)})


@op("dropout", pure=False)
def dropout(x, p, channelwise=False):
    """Dropout in train mode, identity in eval; channelwise zeroes whole channels (Dropout1d/2d/3d on [B, C, *S])."""
    need_tensor(x)
    if not 0 <= p <= 1:
        raise OpError(f"dropout probability must lie in [0, 1], got {p}", "p")
    if channelwise and split_pack(x.shape)[1] is None and len(x.shape) not in (3, 4, 5):
        raise OpError(f"channelwise dropout needs [B, C, *S] with 1-3 spatial axes, got {fmt_shape(x.shape)}", "x")
    return Out([x], x.shape, {"p": float(p), "channelwise": bool(channelwise)})


@op("softmax", "log_softmax")
def softmax(x, dim=-1):
    """Softmax over one axis."""
    need_tensor(x)
    return Out([x], x.shape, {"dim": resolve_axis(x.shape, dim)})


@op("normalize")
def normalize(x, dim=1, p=2.0, eps=1e-12):
    """x / max(||x||_p, eps) along an axis."""
    need_tensor(x)
    return Out([x], x.shape, {"dim": resolve_axis(x.shape, dim), "p": float(p), "eps": float(eps)})


# --- shape manipulation ------------------------------------------------------------------------

@op("transpose")
def transpose(x, dim0=-2, dim1=-1):
    """Swap two axes."""
    need_tensor(x)
    a, b = resolve_axis(x.shape, dim0, "dim0"), resolve_axis(x.shape, dim1, "dim1")
    if split_pack(x.shape)[1] is not None:
        raise OpError("transpose needs a fixed-rank input; use rearrange")
    s = list(x.shape)
    s[a], s[b] = s[b], s[a]
    return Out([x], tuple(s), {"dim0": a, "dim1": b})


@op("permute")
def permute(x, dims):
    """Reorder all axes."""
    need_tensor(x)
    if split_pack(x.shape)[1] is not None:
        raise OpError("permute needs a fixed-rank input; use rearrange")
    axes = tuple(resolve_axis(x.shape, d, "dims") for d in dims)
    if sorted(axes) != list(range(len(x.shape))):
        raise OpError(f"permute needs each of the {len(x.shape)} axes once, got {list(dims)}", "dims")
    return Out([x], tuple(x.shape[a] for a in axes), {"dims": axes})


@op("flatten")
def flatten(x, start=1, end=-1):
    """Merge the axes start..end into one."""
    need_tensor(x)
    pre, pack, suf = split_pack(x.shape)
    # flatten(x, 2) of [B, C, *S] starts at the variadic part's first axis: [B, C, |S]
    starts_at_pack = pack is not None and start == len(pre) and not isinstance(start, bool)
    a = len(pre) if starts_at_pack else resolve_axis(x.shape, start, "start")
    b = resolve_axis(x.shape, end, "end") if not (pack is not None and end == -1 and not suf) else "end"
    if pack is not None:
        if not (isinstance(a, int) and a >= 0 and (b == "end" or (isinstance(b, int) and b < 0))):
            raise OpError("flatten of a variadic shape must start at or before and end after its variadic part")
        last = len(x.shape) if b == "end" else len(x.shape) + b + 1
        merged = numel(x.shape[a:last])
        return Out([x], x.shape[:a] + (merged,) + x.shape[last:], {"start": a, "end": -1 if b == "end" else b})
    if b < a:
        raise OpError(f"flatten end {end} comes before start {start}")
    return Out([x], x.shape[:a] + (numel(x.shape[a:b + 1]),) + x.shape[b + 1:], {"start": a, "end": b})


@op("unsqueeze")
def unsqueeze(x, dim=None, like=None):
    """Insert a unit axis at `dim`, or append unit axes until x lines up with `like`."""
    need_tensor(x)
    if like is not None:
        need_tensor(like, "like")
        ls, xs = like.shape, x.shape
        if len(xs) > len(ls) and split_pack(ls)[1] is None:
            raise OpError(f"cannot line up {fmt_shape(xs)} with the smaller {fmt_shape(ls)}")
        pre, pack, suf = split_pack(ls)
        if pack is not None:
            if len(xs) > len(pre):
                raise OpError(f"unsqueeze(like=) needs x to cover only the axes before the variadic part of "
                              f"{fmt_shape(ls)}, got {fmt_shape(xs)}")
            shape = xs + (1,) * (len(pre) - len(xs)) + (Pack(pack.name, True),) + (1,) * len(suf)
        else:
            shape = xs + (1,) * (len(ls) - len(xs))
        for a, b in zip(xs, ls):
            if not (is_one(a) or dim_eq(a, b)):
                raise OpError(f"unsqueeze(like=): leading axes of {fmt_shape(xs)} do not match {fmt_shape(ls)}")
        return Out([x, like], shape, {"like": True})
    if dim is None:
        raise OpError("unsqueeze needs `dim` or `like`", "dim")
    if split_pack(x.shape)[1] is not None and dim < 0:
        raise OpError("unsqueeze of a variadic shape needs a non-negative dim")
    r = len(x.shape) + 1
    d = dim % r if split_pack(x.shape)[1] is None else dim
    if not -r <= dim < r:
        raise OpError(f"dim {dim} is out of range for unsqueeze of {fmt_shape(x.shape)}", "dim")
    return Out([x], x.shape[:d] + (1,) + x.shape[d:], {"dim": d})


@op("squeeze")
def squeeze(x, dim):
    """Remove a unit axis."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    if not is_one(x.shape[a]):
        raise OpError(f"axis {dim} of {fmt_shape(x.shape)} is not of size 1", "dim")
    s = list(x.shape)
    del s[a]
    return Out([x], tuple(s), {"dim": a})


@op("rearrange")
def rearrange(x, pattern, **sizes):
    """Reshape and permute by a pattern: rearrange(x, "b c (g d) h w -> b g d (h w)", g=4)."""
    from .patterns import infer
    need_tensor(x)
    try:
        shape, recipe = infer(pattern, x.shape, sizes)
    except ValueError as e:
        raise OpError(str(e), "pattern", "patterns look like \"b c h w -> b (h w) c\"") from None
    return Out([x], shape, {"pattern": pattern, "sizes": dict(sorted(sizes.items()))})


def _list_of_tensors(xs, arg):
    if not isinstance(xs, (list, tuple)) or not xs or not all(isinstance(v, T) for v in xs):
        raise OpError(f"`{arg}` must be a non-empty list of tensors", arg)
    return list(xs)


@op("concat", "cat")
def concat(xs, dim=1):
    """Join tensors along an existing axis."""
    xs = _list_of_tensors(xs, "xs")
    a = resolve_axis(xs[0].shape, dim)
    total = 0
    for v in xs:
        if len(v.shape) != len(xs[0].shape):
            raise OpError(f"concat: ranks differ, {fmt_shape(xs[0].shape)} and {fmt_shape(v.shape)}")
        for i, (p, q) in enumerate(zip(v.shape, xs[0].shape)):
            if i != a and not dim_eq(p, q):
                raise OpError(f"concat: shapes {fmt_shape(xs[0].shape)} and {fmt_shape(v.shape)} differ off axis {dim}")
        total = total + sympy.sympify(v.shape[a])
    s = list(xs[0].shape)
    s[a] = norm(total)
    return Out(xs, tuple(s), {"dim": a})


@op("stack")
def stack(xs, dim=1):
    """Join same-shape tensors along a new axis."""
    xs = _list_of_tensors(xs, "xs")
    for v in xs[1:]:
        if broadcast(v.shape, xs[0].shape) != tuple(xs[0].shape) or len(v.shape) != len(xs[0].shape):
            raise OpError(f"stack: shapes {fmt_shape(xs[0].shape)} and {fmt_shape(v.shape)} differ")
    r = len(xs[0].shape) + 1
    if split_pack(xs[0].shape)[1] is not None and dim < 0:
        raise OpError("stack of variadic shapes needs a non-negative dim")
    d = dim % r if split_pack(xs[0].shape)[1] is None else dim
    return Out(xs, xs[0].shape[:d] + (len(xs),) + xs[0].shape[d:], {"dim": d})


@op("split")
def split(x, sizes, dim=1):
    """Split an axis into parts: an int gives equal parts of that many, a list gives their sizes."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    n = x.shape[a]
    if isinstance(sizes, int):
        if not isinstance(n, int) or n % sizes:
            raise OpError(f"split: axis of size {n} does not split into parts of {sizes}", "sizes")
        parts = [sizes] * (n // sizes)
    else:
        parts = list(sizes)
        if not dim_eq(sum(parts), n):
            raise OpError(f"split: sizes {parts} do not add up to {n}", "sizes")
    shapes = []
    for p in parts:
        s = list(x.shape)
        s[a] = p
        shapes.append(tuple(s))
    return Out([x], None, {"sizes": tuple(parts), "dim": a}, n_outputs=len(parts), shapes=shapes)


@op("chunk")
def chunk(x, n, dim=1):
    """Split an axis into n equal parts."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    size = x.shape[a]
    if not isinstance(size, int) or size % n:
        raise OpError(f"chunk: axis of size {size} does not divide into {n} parts", "n")
    return split(x, size // n, dim)


@op("select")
def select(x, dim, index):
    """Take one index along an axis (the axis disappears)."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    s = list(x.shape)
    del s[a]
    return Out([x], tuple(s), {"dim": a, "index": need_int(index, "index")})


@op("narrow")
def narrow(x, dim, start, length):
    """A slice start:start+length along an axis."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    s = list(x.shape)
    s[a] = need_int(length, "length", 1)
    return Out([x], tuple(s), {"dim": a, "start": need_int(start, "start"), "length": length})


@op("roll")
def roll(x, shifts, dims):
    """Circular shift along axes (torch.roll): roll(x, [-s, -s], dims=[H, W]); an int shift applies to every axis listed."""
    need_tensor(x)
    axes = resolve_axes(x.shape, dims, "dims")
    if "S" in axes:
        raise OpError("roll needs fixed axes, not a variadic run", "dims", "list the axes: dims=[2, 3]")
    sh = list(shifts) if isinstance(shifts, (list, tuple)) else [shifts] * len(axes)
    for v in sh:
        need_int(v, "shifts")
    if len(sh) != len(axes):
        raise OpError(f"roll needs one shift per axis, got shifts={shifts!r} for dims={dims!r}", "shifts")
    return Out([x], x.shape, {"shifts": tuple(sh), "dims": axes})


@op("split_like")
def split_like(x, likes, dim=1):
    """Split an axis into parts as long as that axis of each tensor in `likes` (sizes may be symbolic: H, W)."""
    need_tensor(x)
    likes = _list_of_tensors(likes, "likes")
    a = resolve_axis(x.shape, dim)
    if isinstance(x.shape[a], Pack):
        raise OpError("split_like needs a fixed axis", "dim")
    shapes, total = [], 0
    for v in likes:
        if len(v.shape) != len(x.shape) or isinstance(v.shape[a], Pack):
            raise OpError(f"split_like: {fmt_shape(v.shape)} does not line up with {fmt_shape(x.shape)}", "likes")
        s = list(x.shape)
        s[a] = v.shape[a]
        shapes.append(tuple(s))
        total = total + sympy.sympify(v.shape[a])
    if not dim_eq(total, x.shape[a]):
        raise OpError(f"split_like: parts {[str(v.shape[a]) for v in likes]} do not add up to {x.shape[a]}", "likes")
    return Out([x, *likes], None, {"dim": a}, n_outputs=len(likes), shapes=shapes)


@op("conv2d_fn")
def conv2d_fn(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D conv of x [B, C, H, W] by a weight tensor: [O, C/groups, kh, kw], or [B, O, C/groups, kh, kw] one per sample."""
    need_tensor(x), need_tensor(weight, "weight")
    need_rank(x, (4,), "conv2d_fn")
    need_int(groups, "groups", 1)
    ws = weight.shape
    per_sample = len(ws) == 5
    if len(ws) not in (4, 5) or any(isinstance(d, Pack) for d in ws):
        raise OpError(f"conv2d_fn needs a weight [O, C/groups, kh, kw] or [B, O, C/groups, kh, kw], got {fmt_shape(ws)}",
                      "weight")
    if per_sample and not dim_eq(ws[0], x.shape[0]):
        raise OpError(f"conv2d_fn: per-sample weight {fmt_shape(ws)} does not match batch {x.shape[0]}", "weight")
    o, cg, kh, kw = ws[-4:]
    if not dim_eq(sympy.sympify(cg) * groups, x.shape[1]):
        raise OpError(f"conv2d_fn: weight {fmt_shape(ws)} with groups={groups} needs {cg} * {groups} input channels, "
                      f"got {fmt_shape(x.shape)}", "weight")
    if not isinstance(o, int) or o % groups or not isinstance(kh, int) or not isinstance(kw, int):
        raise OpError(f"conv2d_fn: weight {fmt_shape(ws)}: fixed sizes, out channels divisible by groups", "weight")
    ins = [x, weight]
    if bias is not None:
        need_tensor(bias, "bias")
        want = ((x.shape[0], o) if per_sample else (o,))
        if len(bias.shape) != len(want) or not all(dim_eq(p, q) for p, q in zip(bias.shape, want)):
            raise OpError(f"conv2d_fn: bias {fmt_shape(bias.shape)} should be {fmt_shape(want)}", "bias")
        ins.append(bias)
    st, pd, dl = tuple_n(stride, 2, "stride"), tuple_n(padding, 2, "padding"), tuple_n(dilation, 2, "dilation")
    sp = tuple(conv_out(d, k, a, p, e) for d, k, a, p, e in zip(x.shape[2:], (kh, kw), st, pd, dl))
    return Out(ins, (x.shape[0], o) + sp, {"stride": st, "padding": pd, "dilation": dl, "groups": groups,
                                           "bias": bias is not None})


@op("expand")
def expand(x, like):
    """Broadcast x to the shape of `like` (materialised view)."""
    need_tensor(x), need_tensor(like, "like")
    r = broadcast(x.shape, like.shape)
    if r is None or len(r) != len(like.shape):
        raise OpError(f"cannot expand {fmt_shape(x.shape)} to {fmt_shape(like.shape)}")
    return Out([x, like], like.shape)


@op("reshape")
def reshape(x, like):
    """Reshape x to the shape of `like` (same element count): undoes a flatten, e.g. back to [B, C, *S]."""
    need_tensor(x), need_tensor(like, "like")
    if not dim_eq(numel(x.shape), numel(like.shape)):
        raise OpError(f"cannot reshape {fmt_shape(x.shape)} to {fmt_shape(like.shape)}: element counts differ",
                      hint="reshape keeps the element count; move axes with rearrange or transpose first")
    return Out([x, like], like.shape)


# --- spatial ----------------------------------------------------------------------------------

@op("adaptive_avg_pool", "adaptive_max_pool")
def adaptive_pool(x, size):
    """Pool a [B, C, *spatial] input to a fixed spatial size (rank from the input)."""
    need_tensor(x)
    need_rank(x, (3, 4, 5), "adaptive pooling")
    n = len(x.shape) - 2
    size = sizes_n(size, n, "size")
    return Out([x], x.shape[:2] + size, {"size": size})


@op("max_pool")
def pool(x, kernel, stride=None, padding=0, ceil_mode=False):
    """Window pooling over the spatial axes of [B, C, *spatial] (rank from the input)."""
    need_tensor(x)
    return _pool(x, kernel, stride, padding, ceil_mode)


@op("avg_pool")
def avg_pool(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Window pooling over the spatial axes of [B, C, *spatial]; count_include_pad=false divides by the in-bounds positions only."""
    need_tensor(x)
    out = _pool(x, kernel, stride, padding, ceil_mode)
    if not count_include_pad:       # the default keeps no attribute: IR dumps of existing specs do not change
        out.attrs["count_include_pad"] = False
    return out


def _pool(x, kernel, stride, padding, ceil_mode):
    if split_pack(x.shape)[1] is not None:
        return _pool_variadic(x, kernel, stride, padding, ceil_mode)
    need_rank(x, (3, 4, 5), "pooling")
    n = len(x.shape) - 2
    k = tuple_n(kernel, n, "kernel")
    s = tuple_n(stride if stride is not None else kernel, n, "stride")
    p = tuple_n(padding, n, "padding")
    if ceil_mode:
        # ceil((d + 2p - k) / s) + 1; torch drops a last window that starts past d + p, which
        # cannot happen when s <= k - p (gather-excite's kernel = stride windows)
        if any(ss > kk - pp for kk, ss, pp in zip(k, s, p)):
            raise OpError("ceil_mode needs stride <= kernel - padding", "ceil_mode")
        sp = tuple(conv_out(sympy.sympify(d) + ss - 1, kk, ss, pp, 1) for d, kk, ss, pp in zip(x.shape[2:], k, s, p))
        return Out([x], x.shape[:2] + sp, {"kernel": k, "stride": s, "padding": p, "ceil_mode": True})
    sp = tuple(conv_out(d, kk, ss, pp, 1) for d, kk, ss, pp in zip(x.shape[2:], k, s, p))
    return Out([x], x.shape[:2] + sp, {"kernel": k, "stride": s, "padding": p})


def _pool_variadic(x, kernel, stride, padding, ceil_mode):
    """Pooling of x [B, C, *S], whose spatial rank is known only at run time.

    An int size applies to every spatial axis; a list lines up with the last axes: axes before
    it are not pooled, entries beyond the input's rank are dropped. [1, 2, 2] pools a 3-D input
    by 1x2x2, a 2-D one by 2x2, a 1-D one by 2 (non-local's sub-sampling). The result's spatial
    run is a new pack named after the window (`*S_pool1x2x2`).
    """
    pre, pack, suf = split_pack(x.shape)
    if len(pre) != 2 or suf or pack.ones:
        raise OpError(f"pooling of a variadic shape needs [B, C, *S], got {fmt_shape(x.shape)}")
    if ceil_mode:
        raise OpError("ceil_mode is not supported", "ceil_mode")

    def sizes(v, arg):
        if isinstance(v, (list, tuple)):
            return tuple(need_int(i, arg, 0) for i in v)
        return need_int(v, arg, 0)

    k = sizes(kernel, "kernel")
    s = sizes(stride if stride is not None else kernel, "stride")
    p = sizes(padding, "padding")

    def tag(v):
        return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)
    name = f"{pack.name}_pool{tag(k)}" + (f"_s{tag(s)}" if s != k else "") + (f"_p{tag(p)}" if p else "")
    return Out([x], x.shape[:2] + (Pack(name),), {"kernel": k, "stride": s, "padding": p})


@op("interpolate")
def interpolate(x, size=None, like=None, scale=None, mode="nearest", align_corners=None):
    """Resize the spatial axes to `size`, to those of `like`, or by `scale`."""
    need_tensor(x)
    _choice(mode, ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area"), "mode")
    need_rank(x, (3, 4, 5), "interpolate")
    n = len(x.shape) - 2
    if like is not None:
        need_tensor(like, "like")
        if len(like.shape) != len(x.shape):
            raise OpError(f"interpolate(like=) ranks differ: {fmt_shape(x.shape)} and {fmt_shape(like.shape)}")
        return Out([x, like], x.shape[:2] + like.shape[2:], {"mode": mode, "align_corners": align_corners})
    if size is not None:
        size = sizes_n(size, n, "size")
        return Out([x], x.shape[:2] + size, {"size": size, "mode": mode, "align_corners": align_corners})
    if scale is not None:
        sp = tuple(norm(sympy.floor(sympy.sympify(d) * scale)) for d in x.shape[2:])
        return Out([x], x.shape[:2] + sp, {"scale": float(scale), "mode": mode, "align_corners": align_corners})
    raise OpError("interpolate needs `size`, `like` or `scale`")


@op("pad")
def pad(x, padding, value=0.0, mode="constant"):
    """Padding, torch order: (last_lo, last_hi, second_last_lo, ...); mode constant (value), reflect, replicate or circular."""
    need_tensor(x)
    padding = tuple(padding)
    if len(padding) % 2 or len(padding) // 2 > len(x.shape):
        raise OpError(f"pad needs pairs of sizes, got {padding}", "padding")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise OpError(f"unknown pad mode {mode!r}", "mode", "constant, reflect, replicate or circular")
    if mode != "constant" and not 1 <= len(padding) // 2 <= min(3, len(x.shape) - 2):
        raise OpError(f"{mode} padding pads 1 to 3 trailing axes of a [B, C, ...] input, got {padding} "
                      f"for {fmt_shape(x.shape)}", "padding")
    s = list(x.shape)
    for i in range(len(padding) // 2):
        s[-1 - i] = norm(sympy.sympify(s[-1 - i]) + padding[2 * i] + padding[2 * i + 1])
    attrs = {"padding": padding, "value": float(value)}
    if mode != "constant":          # constant pads keep their old attributes (IR dumps unchanged)
        attrs["mode"] = mode
    return Out([x], tuple(s), attrs)


@op("unfold")
def unfold(x, dim, size, step=1, padding=0):
    """Sliding windows along an axis (zero-padded both sides): a new last axis of length `size`."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    if split_pack(x.shape)[1] is not None:
        raise OpError("unfold needs a fixed-rank input")
    n = conv_out(x.shape[a], size, step, padding, 1)
    s = list(x.shape)
    s[a] = n
    return Out([x], tuple(s) + (size,), {"dim": a, "size": size, "step": step, "padding": padding})


@op("affine_grid")
def affine_grid(theta, like, align_corners=False):
    """Sampling grid [B, H, W, 2] of a batch of 2x3 affine maps, for the size of `like`."""
    need_tensor(theta, "theta"), need_tensor(like, "like")
    need_rank(like, (4,), "affine_grid", "like")
    if len(theta.shape) != 3 or theta.shape[1:] != (2, 3):
        raise OpError(f"affine_grid needs theta of shape [B, 2, 3], got {fmt_shape(theta.shape)}", "theta")
    return Out([theta, like], (theta.shape[0],) + tuple(like.shape[2:]) + (2,), {"align_corners": bool(align_corners)})


@op("grid_sample")
def grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    """Sample x at the grid's normalised coordinates (bilinear by default)."""
    need_tensor(x), need_tensor(grid, "grid")
    _choice(mode, ("bilinear", "nearest", "bicubic"), "mode")
    _choice(padding_mode, ("zeros", "border", "reflection"), "padding_mode")
    need_rank(x, (4,), "grid_sample")
    if len(grid.shape) != 4 or grid.shape[-1] != 2:
        raise OpError(f"grid_sample needs a grid [B, H, W, 2], got {fmt_shape(grid.shape)}", "grid")
    return Out([x, grid], x.shape[:2] + grid.shape[1:3],
               {"mode": mode, "padding_mode": padding_mode, "align_corners": bool(align_corners)})


# --- constants --------------------------------------------------------------------------------

@op("dct_filters")
def dct_filters(channels, height, width, freqs):
    """FcaNet's 2-D DCT basis per channel [channels, height, width]; freqs = [[u, v], ...] or a table name ("top16") split channels evenly."""
    if isinstance(freqs, str):      # one of FcaNet's selections, "top16", "low4", "bot8"... (see runtime)
        if freqs[:3] not in ("top", "low", "bot") or freqs[3:] not in ("1", "2", "4", "8", "16", "32"):
            raise OpError(f"unknown frequency selection {freqs!r}", "freqs",
                          "top, low or bot followed by 1, 2, 4, 8, 16 or 32, e.g. top16")
        n = int(freqs[3:])
    else:
        freqs = tuple(tuple(f) for f in freqs)
        n = len(freqs)
    if channels % n:
        raise OpError(f"{channels} channels do not split evenly over {n} frequencies", "freqs")
    return Out([], (channels, height, width),
               {"channels": channels, "height": height, "width": width, "freqs": freqs})


@op("eye")
def eye(n):
    """Identity matrix [n, n]."""
    return Out([], (need_int(n, "n", 1), n), {"n": n})


@op("triu_indices")
def triu_indices(n, offset=0):
    """Flat indices of the upper triangle of an n x n matrix (row-major), as a constant."""
    need_int(n, "n", 1), need_int(offset, "offset")
    if n * n > MAX_ELEMENTS:
        raise OpError(f"a {n} x {n} matrix has more than {MAX_ELEMENTS} elements", "n", "docs/language.md, Limits")
    k = sum(max(0, n - max(i + offset, 0)) for i in range(n))
    return Out([], (k,), {"n": n, "offset": offset}, dtype="long")


@op("index_select")
def index_select(x, dim, index):
    """Gather entries along an axis at integer indices."""
    need_tensor(x), need_tensor(index, "index")
    a = resolve_axis(x.shape, dim)
    s = list(x.shape)
    s[a] = index.shape[0]
    return Out([x, index], tuple(s), {"dim": a})


@op("gather")
def gather(x, dim, index):
    """torch.gather along axis `dim` of x; an index with fewer axes than x is broadcast over x's leading axes."""
    need_tensor(x), need_tensor(index, "index")
    r = len(index.shape)
    if split_pack(x.shape)[1] is not None or r > len(x.shape):
        raise OpError(f"gather needs a fixed-rank x with at least the index's {r} axes, got {fmt_shape(x.shape)}")
    a = resolve_axis(x.shape, dim)
    lead = len(x.shape) - r
    if a < lead:
        raise OpError(f"gather: axis {dim} is not one of the index's trailing {r} axes of {fmt_shape(x.shape)}", "dim")
    for i, (d, e) in enumerate(zip(x.shape[lead:], index.shape)):
        if lead + i != a and not dim_eq(d, e):
            raise OpError(f"gather: index {fmt_shape(index.shape)} does not fit {fmt_shape(x.shape)} off axis {a}", "index")
    return Out([x, index], tuple(x.shape[:lead]) + tuple(index.shape), {"dim": a})


@op("window_index")
def window_index(h, w, mask_h, mask_w):
    """Constant [h*w, h*w]: entry [j, i] is the row-major offset in the mask_h x mask_w window centred on position i
    of an h x w map that covers position j, or mask_h * mask_w where j lies outside that window (PSANet's PSAMask)."""
    n = need_int(h, "h", 1) * need_int(w, "w", 1)
    need_int(mask_h, "mask_h", 1), need_int(mask_w, "mask_w", 1)
    return Out([], (n, n), {"h": h, "w": w, "mask_h": mask_h, "mask_w": mask_w}, dtype="long")


@op("relative_position_index")
def relative_position_index(h, w):
    """Constant [h*w, h*w] long: the row of a (2h-1)(2w-1)-row relative position bias table for query i, key j (Swin).

    Entry [i, j] = (yi - yj + h - 1) * (2w - 1) + (xi - xj + w - 1), positions of an h x w window row-major.
    """
    n = need_int(h, "h", 1) * need_int(w, "w", 1)
    return Out([], (n, n), {"h": h, "w": w}, dtype="long")


@op("sample_onehot")
def sample_onehot(p, u, dim=-1):
    """Inverse-CDF draw from probabilities p along `dim`, given uniform noise u in [0, 1) shaped like p without
    that axis: the one-hot of the first index whose cumulative probability exceeds u (no gradient)."""
    need_tensor(p, "p"), need_tensor(u, "u")
    a = resolve_axis(p.shape, dim)
    rest = tuple(p.shape[:a]) + tuple(p.shape[a + 1:])
    if len(u.shape) != len(rest) or not all(dim_eq(x, y) for x, y in zip(u.shape, rest)):
        raise OpError(f"sample_onehot: u should be {fmt_shape(rest)} (p {fmt_shape(p.shape)} without axis {a}), "
                      f"got {fmt_shape(u.shape)}", "u")
    return Out([p, u], p.shape, {"dim": a})


@op("split_matrix")
def split_matrix(x, dim, n):
    """Membership [size, n] of the n contiguous parts torch.tensor_split cuts axis `dim` of x into (first size % n parts one longer)."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    if isinstance(x.shape[a], Pack):
        raise OpError("split_matrix needs a fixed axis", "dim")
    return Out([x], (x.shape[a], need_int(n, "n", 1)), {"dim": a, "n": n})


@op("hardmax")
def hardmax(x, dim=-1):
    """One-hot of the argmax along an axis (the first maximum on ties), in x's dtype, without gradient."""
    need_tensor(x)
    return Out([x], x.shape, {"dim": resolve_axis(x.shape, dim)})


@op("patch_grid")
def patch_grid(l, like, size):
    """Sampling grid [B, size, size, 2] of the size x size pixel patch of `like` [B, C, H, W] centred at l [B, 2] = (x, y) in [-1, 1] (align_corners=False pixel spacing)."""
    need_tensor(l, "l"), need_tensor(like, "like")
    need_rank(like, (4,), "patch_grid", "like")
    if len(l.shape) != 2 or not dim_eq(l.shape[1], 2) or not dim_eq(l.shape[0], like.shape[0]):
        raise OpError(f"patch_grid needs l [B, 2] for like {fmt_shape(like.shape)}, got {fmt_shape(l.shape)}", "l")
    return Out([l, like], (l.shape[0], need_int(size, "size", 1), size, 2), {"size": size})


@op("detach")
def detach(x):
    """Stop the gradient: the value of x, with no gradient flowing back through it."""
    need_tensor(x)
    return Out([x], x.shape)


@op("random_bases")
def random_bases(shape, std=1.0, norm_dim=None):
    """A buffer drawn once at build, N(0, std), L2-normalised along `norm_dim` (eps 1e-6) if given; read as a copy."""
    shape = tuple(need_int(d, "shape", 1) for d in (shape if isinstance(shape, (list, tuple)) else [shape]))
    if norm_dim is not None and not -len(shape) <= need_int(norm_dim, "norm_dim") < len(shape):
        raise OpError(f"norm_dim {norm_dim} is out of range for shape {list(shape)}", "norm_dim")
    return Out([], shape, {"shape": shape, "std": float(std), "norm_dim": norm_dim})


@op("ema_update", pure=False)
def ema_update(buffer, value, momentum, dims=None):
    """Train mode: buffer <- momentum * buffer + (1 - momentum) * mean(value, dims) (no gradient); returns value."""
    need_tensor(buffer, "buffer"), need_tensor(value)
    axes = resolve_axes(value.shape, dims) if dims is not None else ()
    mean_shape = drop_axes(value.shape, axes, True)
    if broadcast(buffer.shape, mean_shape) != tuple(buffer.shape):
        raise OpError(f"the mean of value {fmt_shape(mean_shape)} does not fit buffer {fmt_shape(buffer.shape)}", "value")
    return Out([buffer, value], value.shape, {"momentum": float(momentum), "dims": axes})


@op("rand_like", pure=False)
def rand_like(x, last=None):
    """Fresh U[0, 1) noise (global RNG, no gradient) shaped like x, with `last` as the size of the last axis if given."""
    need_tensor(x)
    if split_pack(x.shape)[1] is not None:
        raise OpError("rand_like needs a fixed-rank x")
    shape = tuple(x.shape) if last is None else tuple(x.shape[:-1]) + (need_int(last, "last", 1),)
    return Out([x], shape, {"last": last})


@op("if_training")
def if_training(a, b):
    """a when the module is in train mode, b in eval mode (both of one shape)."""
    need_tensor(a, "a"), need_tensor(b, "b")
    if len(a.shape) != len(b.shape) or not all(dim_eq(u, v) for u, v in zip(a.shape, b.shape)):
        raise OpError(f"if_training needs operands of one shape, got {fmt_shape(a.shape)} and {fmt_shape(b.shape)}")
    return Out([a, b], a.shape)


@op("arange_like")
def arange_like(x, dim):
    """The positions 0, 1, ..., n-1 along axis `dim` of x, as a vector [n] in x's dtype and device (no gradient)."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    return Out([x], (x.shape[a],), {"dim": a})


@op("full_like")
def full_like(x, value):
    """A constant tensor of x's shape, dtype and device, every entry `value` (no gradient)."""
    need_tensor(x)
    return Out([x], x.shape, {"value": float(value)})


# --- fused ops (made by passes; usable directly) -----------------------------------------------

@op("attention")
def attention(q, k, v, scale=None):
    """softmax(q @ k^T * scale) @ v over the last two axes: scaled dot-product attention."""
    for t, n in ((q, "q"), (k, "k"), (v, "v")):
        need_tensor(t, n)
        if len(t.shape) < 2 or split_pack(t.shape)[1] is not None:
            raise OpError(f"attention needs fixed-rank operands, got {fmt_shape(t.shape)}", n)
    if not dim_eq(q.shape[-1], k.shape[-1]) or not dim_eq(k.shape[-2], v.shape[-2]):
        raise OpError(f"attention shapes do not fit: q {fmt_shape(q.shape)}, k {fmt_shape(k.shape)}, "
                      f"v {fmt_shape(v.shape)}")
    return Out([q, k, v], q.shape[:-1] + (v.shape[-1],), {"scale": scale})


GATE_ACTS = ("sigmoid", "tanh", "hardsigmoid")      # what a gate may apply (fuse_gate fuses these)


@op("gate")
def gate(x, s, act="sigmoid", plus_one=False):
    """x * act(s) (or x * (1 + act(s))): a gate and its product in one node."""
    if act not in GATE_ACTS:
        raise OpError(f"a gate applies one of {', '.join(GATE_ACTS)}, got {act!r}", "act",
                      "other activations: x * act(s) written out")
    r = _binary(x, s).shape
    return Out([x, s], r, {"act": act, "plus_one": bool(plus_one)})


# --- layers -----------------------------------------------------------------------------------

INITS = ("zeros", "ones", "normal", "uniform", "default")


def _float(v, arg):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise OpError(f"`{arg}` must be a number, got {v!r}", arg)
    return float(v)


def _init(v, arg):
    if v is None or isinstance(v, (int, float)) or (isinstance(v, (list, tuple)) and all(
            isinstance(x, (int, float)) for x in v)):
        return v if not isinstance(v, list) else tuple(v)
    if isinstance(v, str) and v in INITS:
        return v
    raise OpError(f"`{arg}` must be one of {', '.join(INITS)}, a number or a list of numbers, got {v!r}", arg)


@layer("linear")
def linear_layer(in_features, out_features, bias=True, weight_init=None, bias_init=None):
    """Fully connected layer acting on the last axis: weight [out, in]."""
    need_int(in_features, "in_features", 1), need_int(out_features, "out_features", 1)
    return {"in_features": in_features, "out_features": out_features, "bias": bool(bias),
            "weight_init": _init(weight_init, "weight_init"), "bias_init": _init(bias_init, "bias_init")}


def _ints(v, n, arg, minimum):
    out = tuple_n(v, n, arg)
    for i in out:
        need_int(i, arg, minimum)
    return out


def _conv(n):
    def conv(in_channels, out_channels, kernel, stride=1, padding=0, dilation=1, groups=1, bias=True,
             weight_init=None, bias_init=None):
        need_int(in_channels, "in_channels", 1), need_int(out_channels, "out_channels", 1)
        need_int(groups, "groups", 1)
        if in_channels % groups or out_channels % groups:
            raise OpError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}",
                          "groups")
        k = _ints(kernel, n, "kernel", 1)
        d = _ints(dilation, n, "dilation", 1)
        if padding == "same":
            padding = tuple(dd * (kk - 1) // 2 for kk, dd in zip(k, d))
        return {"in_channels": in_channels, "out_channels": out_channels, "kernel": k,
                "stride": _ints(stride, n, "stride", 1), "padding": _ints(padding, n, "padding", 0),
                "dilation": d, "groups": groups, "bias": bool(bias),
                "weight_init": _init(weight_init, "weight_init"), "bias_init": _init(bias_init, "bias_init")}
    conv.__doc__ = f"{n}-D convolution over [B, C, *{n} spatial axes]; `padding=\"same\"` keeps the size."
    return conv


for _n in (1, 2, 3):
    _register(LAYERS, f"conv{_n}d", _conv(_n))


@layer("batchnorm")
def batchnorm_layer(num_features, eps=1e-5, momentum=0.1, affine=True, weight_init=None, bias_init=None):
    """Batch normalisation over axis 1 of [B, C, ...] (any rank)."""
    need_int(num_features, "num_features", 1)
    return {"num_features": num_features, "eps": _float(eps, "eps"), "momentum": _float(momentum, "momentum"),
            "affine": bool(affine),
            "weight_init": _init(weight_init, "weight_init"), "bias_init": _init(bias_init, "bias_init")}


@layer("layernorm")
def layernorm_layer(shape, eps=1e-5, affine=True):
    """Layer normalisation over the trailing axes `shape`."""
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
    for d in shape:
        need_int(d, "shape", 1)
    return {"shape": shape, "eps": _float(eps, "eps"), "affine": bool(affine)}


@layer("groupnorm")
def groupnorm_layer(groups, channels, eps=1e-5, affine=True):
    """Group normalisation over axis 1 of [B, C, ...]."""
    need_int(groups, "groups", 1), need_int(channels, "channels", 1)
    if channels % groups:
        raise OpError(f"groups={groups} must divide channels={channels}", "groups")
    return {"groups": groups, "channels": channels, "eps": _float(eps, "eps"), "affine": bool(affine)}


@layer("param")
def param_layer(shape, init="zeros"):
    """A raw learned tensor of the given shape (`alpha = param([channels], init="ones")`)."""
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
    for d in shape:
        need_int(d, "shape", 1)
    return {"shape": shape, "init": _init(init, "init")}


def layer_apply_shape(kind: str, args: dict, x: T):
    """Shape of applying a declared layer to x."""
    s = x.shape
    if kind == "linear":
        if not s or isinstance(s[-1], Pack) or not dim_eq(s[-1], args["in_features"]):
            raise OpError(f"linear expects last axis {args['in_features']}, got {fmt_shape(s)}")
        return s[:-1] + (args["out_features"],)
    if kind.startswith("conv"):
        n = int(kind[4])
        need_rank(x, (n + 2,), kind)
        if not dim_eq(s[1], args["in_channels"]):
            raise OpError(f"{kind} expects {args['in_channels']} input channels, got {fmt_shape(s)}")
        sp = tuple(conv_out(d, k, st, p, dl) for d, k, st, p, dl in
                   zip(s[2:], args["kernel"], args["stride"], args["padding"], args["dilation"]))
        return (s[0], args["out_channels"]) + sp
    if kind == "batchnorm":
        if len(s) < 2 or not dim_eq(s[1], args["num_features"]):
            raise OpError(f"batchnorm expects {args['num_features']} channels on axis 1, got {fmt_shape(s)}")
        return s
    if kind == "groupnorm":
        if len(s) < 2 or not dim_eq(s[1], args["channels"]):
            raise OpError(f"groupnorm expects {args['channels']} channels on axis 1, got {fmt_shape(s)}")
        return s
    if kind == "layernorm":
        n = len(args["shape"])
        if len(s) < n or not all(dim_eq(a, b) for a, b in zip(s[-n:], args["shape"])):
            raise OpError(f"layernorm over {list(args['shape'])} does not fit {fmt_shape(s)}")
        return s
    raise OpError(f"a `{kind}` cannot be applied like a function; use it as a tensor")


def _range(*args):
    """range() as a list, refused before it is built if it is longer than a loop may run."""
    if not all(isinstance(a, int) for a in args):
        raise TypeError("range() takes integers")
    r = range(*args)
    if len(r) > MAX_LOOP_TRIPS:
        raise LimitExceeded(f"range of {len(r)} steps is over the limit of {MAX_LOOP_TRIPS}")
    return list(r)


def static_builtins():
    """Functions of static values (parameter expressions, layer arguments)."""
    def odd(v):
        return v if int(v) % 2 else int(v) + 1
    return {
        "max": max, "min": min, "abs": abs, "int": int, "float": float, "round": round,
        "floor": math.floor, "ceil": math.ceil, "log": math.log, "log2": math.log2, "sqrt": math.sqrt,
        "odd": odd, "range": _range, "len": len,
    }


# --- argument kinds (the frontend's type check) ---------------------------------------------

# arguments that take tensors; every other argument must be known at compile time
_TENSOR_ARGS = {"x", "a", "b", "cond", "like", "likes", "xs", "index", "weight", "bias", "theta", "grid",
                "p", "u", "l", "q", "k", "v", "buffer", "s", "mask"}
_STATIC_HERE = {"normalize": {"p"}, "dropout": {"p"}, "select": {"index"}}
_TENSOR_HERE = {"ema_update": {"value"}}
LIST_ARGS = ("xs", "likes")          # a list of tensors


def tensor_args(name: str) -> set:
    """The arguments of op `name` that take tensors (or, for arithmetic, numbers)."""
    params = set(OPS[name].signature.parameters)
    return ((params & _TENSOR_ARGS) | _TENSOR_HERE.get(name, set())) - _STATIC_HERE.get(name, set())


def layer_numel(kind: str, a: dict) -> int:
    """Elements of the weight a declared layer allocates (its largest tensor)."""
    if kind == "linear":
        return a["in_features"] * a["out_features"]
    if kind.startswith("conv"):
        return a["out_channels"] * (a["in_channels"] // a["groups"]) * math.prod(a["kernel"])
    if kind == "batchnorm":
        return a["num_features"]
    if kind == "groupnorm":
        return a["channels"]
    return math.prod(a["shape"])        # layernorm, param
