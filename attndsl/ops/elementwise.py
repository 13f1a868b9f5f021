"""Elementwise ops: unary functions, arithmetic, clamps, comparisons and masks, `where`."""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F

from .. import runtime
from ..shapes import broadcast, fmt_shape
from .registry import OPS, OpError, Out, T, lowering, need_choice, need_tensor, op, register

# name -> (torch callable, doc); a static number argument folds through `math` instead
UNARY = {
    "relu": (torch.relu, "max(x, 0), elementwise."),
    "sigmoid": (torch.sigmoid, "1 / (1 + exp(-x)), elementwise."),
    "tanh": (torch.tanh, "Hyperbolic tangent, elementwise."),
    "exp": (torch.exp, "e ** x, elementwise."),
    "log": (torch.log, "Natural logarithm, elementwise."),
    "sqrt": (torch.sqrt, "Square root, elementwise."),
    "rsqrt": (torch.rsqrt, "1 / sqrt(x), elementwise."),
    "abs": (torch.abs, "Absolute value, elementwise."),
    "silu": (F.silu, "x * sigmoid(x) (SiLU, swish), elementwise."),
    "softplus": (F.softplus, "log(1 + exp(x)), elementwise."),
    "square": (torch.square, "x * x, elementwise."),
    "hardsigmoid": (F.hardsigmoid, "Piecewise-linear sigmoid clamp(x / 6 + 1 / 2, 0, 1), elementwise."),
    "neg": (operator.neg, "-x, elementwise."),
    "sign": (torch.sign, "-1, 0 or 1 by the sign of x, elementwise."),
    "elu": (F.elu, "ELU: x where x > 0, exp(x) - 1 elsewhere."),
    "relu6": (F.relu6, "min(max(x, 0), 6), elementwise."),
    "hardswish": (F.hardswish, "x * hardsigmoid(x), elementwise."),
}


def _unary(x):
    """Elementwise function of one tensor."""
    need_tensor(x)
    return Out([x], x.shape)


for _n, (_, _doc) in UNARY.items():
    register(OPS, _n, _unary, doc=_doc)


@lowering(*UNARY)
def lower_unary(b, n, ins):
    if not b.is_node(ins[0]):
        return -ins[0] if n["op"] == "neg" else getattr(math, n["op"])(ins[0])
    return b.call(UNARY[n["op"]][0], ins)


@op("gelu")
def gelu(x, approximate="none"):
    """GELU, exact (erf) or with approximate="tanh" (as torch's F.gelu)."""
    need_tensor(x)
    # the exact form keeps no attribute, so IR dumps of existing specs do not change
    return Out(
        [x],
        x.shape,
        {} if need_choice(approximate, ("none", "tanh"), "approximate") == "none" else {"approximate": approximate},
    )


@lowering("gelu")
def lower_gelu(b, n, ins):
    approximate = n["attrs"].get("approximate")
    return b.call(F.gelu, ins, {"approximate": approximate} if approximate else None)


@op("leaky_relu")
def leaky_relu(x, slope=0.01):
    """Leaky ReLU with the given negative slope."""
    need_tensor(x)
    return Out([x], x.shape, {"slope": float(slope)})


@lowering("leaky_relu")
def lower_leaky_relu(b, n, ins):
    return b.call(F.leaky_relu, ins, {"negative_slope": n["attrs"]["slope"]})


@op("clamp", runtime={"min", "max"})
def clamp(x, min=None, max=None):
    """Clamp into [min, max]."""
    need_tensor(x)
    return Out([x], x.shape, {"min": min, "max": max})


@lowering("clamp")
def lower_clamp(b, n, ins):
    return b.call(torch.clamp, ins, {"min": n["attrs"]["min"], "max": n["attrs"]["max"]})


# name -> (callable, doc); floordiv and mod are scalar arithmetic that only static (parameter) expressions produce
BINARY = {
    "add": (operator.add, "a + b"),
    "sub": (operator.sub, "a - b"),
    "mul": (operator.mul, "a * b"),
    "div": (operator.truediv, "a / b"),
    "pow": (operator.pow, "a ** b"),
    "floordiv": (operator.floordiv, "a // b"),
    "mod": (operator.mod, "a % b"),
}


def elementwise_shape(a, b):
    """Elementwise arithmetic with broadcasting; either side may be a scalar."""
    shapes = [v.shape for v in (a, b) if isinstance(v, T) and v.shape is not None]
    if not shapes:
        return Out([a, b], None)
    out = shapes[0]
    for s in shapes[1:]:
        r = broadcast(out, s)
        if r is None:
            raise OpError(
                f"shapes {fmt_shape(a.shape)} and {fmt_shape(b.shape)} do not broadcast",
                hint="use unsqueeze(s, like=x) or rearrange to line up the axes",
            )
        out = r
    return Out([a, b], out)


for _n, (_, _doc) in BINARY.items():
    register(OPS, _n, elementwise_shape, doc=f"{_doc}, elementwise with broadcasting; either side may be a number.")


@lowering(*BINARY)
def lower_binary(b, n, ins):
    fn = BINARY[n["op"]][0]
    return b.call(fn, ins) if any(b.is_node(v) for v in ins) else fn(*ins)


for _n, _doc in (("maximum", "The larger of a and b"), ("minimum", "The smaller of a and b")):
    register(OPS, _n, elementwise_shape, doc=f"{_doc}, elementwise with broadcasting; either side may be a number.")


@lowering("maximum", "minimum")
def lower_extremum(b, n, ins):
    if all(b.is_node(v) for v in ins):
        return b.call(torch.maximum if n["op"] == "maximum" else torch.minimum, ins)
    t, s = (ins[0], ins[1]) if b.is_node(ins[0]) else (ins[1], ins[0])
    return b.call(torch.clamp, (t,), {"min" if n["op"] == "maximum" else "max": s})


@op("where")
def where(cond, a, b):
    """Select a where cond is nonzero, else b."""
    need_tensor(cond, "cond")
    r = elementwise_shape(a, b).shape
    r = broadcast(cond.shape, r) if r is not None else cond.shape
    if r is None:
        raise OpError("where: operands do not broadcast")
    return Out([cond, a, b], r)


@lowering("where")
def lower_where(b, n, ins):
    # conditions are float tensors (the language has no bool dtype): nonzero means true
    cond = b.call(operator.ne, (ins[0], 0), name="cond")
    return b.call(torch.where, (cond, ins[1], ins[2]))


# masks are float tensors like every other: 1.0 where true, 0.0 where false; `where`, `masked_fill` and
# the logical ops read any nonzero entry as true
COMPARISONS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


def _comparison(sym):
    def compare(a, b):
        if not any(isinstance(v, T) for v in (a, b)):
            raise OpError("a comparison needs at least one tensor", "a")
        return elementwise_shape(a, b)

    compare.__doc__ = (
        f"Mask of a {sym} b, elementwise with broadcasting: 1.0 where true, 0.0 where false (no gradient)."
    )
    return compare


for _n, _sym in COMPARISONS.items():
    register(OPS, _n, _comparison(_sym))


@lowering(*COMPARISONS)
def lower_comparison(b, n, ins):
    return b.call(runtime.compare_mask, (ins[0], ins[1], n["op"]), name="mask")


def _logical(word):
    def logical(a, b):
        need_tensor(a, "a"), need_tensor(b, "b")
        return elementwise_shape(a, b)

    logical.__doc__ = f"Mask of `a {word} b` for masks a, b (nonzero is true): 1.0 or 0.0, no gradient."
    return logical


for _n in ("and", "or"):
    register(OPS, f"logical_{_n}", _logical(_n))


@op("logical_not")
def logical_not(x):
    """1.0 where x is zero, 0.0 elsewhere (`not mask`); no gradient."""
    need_tensor(x)
    return Out([x], x.shape)


@lowering("logical_and", "logical_or", "logical_not")
def lower_logical(b, n, ins):
    return b.call(runtime.logical_mask, (n["op"], *ins), name="mask")


@op("masked_fill")
def masked_fill(x, mask, value):
    """x with `value` (a number) wherever mask is nonzero; the mask broadcasts to x's shape."""
    need_tensor(x), need_tensor(mask, "mask")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OpError(f"`value` must be a number, got {value!r}", "value")
    if broadcast(x.shape, mask.shape) != tuple(x.shape):
        raise OpError(f"masked_fill: mask {fmt_shape(mask.shape)} does not broadcast to x {fmt_shape(x.shape)}", "mask")
    return Out([x, mask], x.shape, {"value": float(value)})


@lowering("masked_fill")
def lower_masked_fill(b, n, ins):
    cond = b.call(operator.ne, (ins[1], 0), name="cond")
    return b.call(torch.masked_fill, (ins[0], cond, n["attrs"]["value"]))
