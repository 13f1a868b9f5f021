"""Tensor products: matmul, einsum, and convolution by a weight tensor."""

from __future__ import annotations

import operator

import sympy
import torch

from .. import runtime
from ..shapes import Pack, broadcast, dim_eq, fmt_shape, split_pack
from .registry import OpError, Out, conv_out, lowering, need_int, need_rank, need_tensor, op, tuple_n


@op("matmul")
def matmul(a, b):
    """Batched matrix product: [..., n, k] @ [..., k, m] -> [..., n, m]."""
    need_tensor(a, "a"), need_tensor(b, "b")
    sa, sb = a.shape, b.shape
    if len(sa) < 2 or len(sb) < 2 or split_pack(sa)[1] or split_pack(sb)[1]:
        raise OpError(f"matmul needs fixed-rank operands of rank >= 2, got {fmt_shape(sa)} @ {fmt_shape(sb)}")
    if not dim_eq(sa[-1], sb[-2]):
        raise OpError(
            f"matmul inner sizes differ: {fmt_shape(sa)} @ {fmt_shape(sb)}",
            hint="transpose one side so the contracted axes match",
        )
    batch = broadcast(sa[:-2], sb[:-2])
    if batch is None:
        raise OpError(f"matmul batch axes do not broadcast: {fmt_shape(sa)} @ {fmt_shape(sb)}")
    return Out([a, b], batch + (sa[-2], sb[-1]))


@lowering("matmul")
def lower_matmul(b, n, ins):
    return b.call(operator.matmul, ins) if any(b.is_node(v) for v in ins) else operator.matmul(*ins)


def _einsum_terms(equation, ranks):
    """The input terms and output term of an einsum equation, checked against the operands' ranks."""
    if not isinstance(equation, str):
        raise OpError(f'`equation` must be a string such as "bij,bjk->bik", got {equation!r}', "equation")
    eq = equation.replace(" ", "")
    if "." in eq:
        raise OpError("`...` is not supported; name every axis", "equation")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    for t in terms + [out]:
        if not all("a" <= c <= "z" or "A" <= c <= "Z" for c in t):
            raise OpError(f"subscripts are letters, got {t!r} in {equation!r}", "equation")
    if len(terms) != len(ranks):
        raise OpError(f"{equation!r} has {len(terms)} input term(s) for {len(ranks)} operand(s)", "equation")
    for i, (t, r) in enumerate(zip(terms, ranks)):
        if len(t) != r:
            raise OpError(f"term {t!r} names {len(t)} axes, operand {i + 1} has {r}", "equation")
    if not arrow:  # implicit output, as torch: the letters used once, in alphabetical order
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
    """Einstein summation of one or two tensors: einsum("bnhwk,bkhwv->bnhwv", q, lam); sizes of a letter must agree
    (or be 1)."""
    xs = [need_tensor(a, "a")] + ([need_tensor(b, "b")] if b is not None else [])
    for v, arg in zip(xs, "ab"):
        if split_pack(v.shape)[1] is not None:
            raise OpError(
                f"einsum needs fixed-rank operands, got {fmt_shape(v.shape)}",
                arg,
                "flatten or rearrange the variadic axes first",
            )
    terms, out = _einsum_terms(equation, [len(v.shape) for v in xs])
    sizes = {}
    for t, v, arg in zip(terms, xs, "ab"):
        for c, d in zip(t, v.shape):
            r = broadcast((sizes[c],), (d,)) if c in sizes else (d,)
            if r is None:
                raise OpError(
                    f"axis {c!r} is {sizes[c]} in one place and {d} in another "
                    f"({equation!r} on {' and '.join(fmt_shape(x.shape) for x in xs)})",
                    arg,
                )
            sizes[c] = r[0]
    return Out(xs, tuple(sizes[c] for c in out), {"equation": ",".join(terms) + "->" + out})


@lowering("einsum")
def lower_einsum(b, n, ins):
    return b.call(torch.einsum, (n["attrs"]["equation"], *ins))


@op("conv2d_fn")
def conv2d_fn(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D conv of x [B, C, H, W] by a weight tensor: [O, C/groups, kh, kw], or [B, O, C/groups, kh, kw] one per
    sample."""
    need_tensor(x), need_tensor(weight, "weight")
    need_rank(x, (4,), "conv2d_fn")
    need_int(groups, "groups", 1)
    ws = weight.shape
    per_sample = len(ws) == 5
    if len(ws) not in (4, 5) or any(isinstance(d, Pack) for d in ws):
        raise OpError(
            f"conv2d_fn needs a weight [O, C/groups, kh, kw] or [B, O, C/groups, kh, kw], got {fmt_shape(ws)}", "weight"
        )
    if per_sample and not dim_eq(ws[0], x.shape[0]):
        raise OpError(f"conv2d_fn: per-sample weight {fmt_shape(ws)} does not match batch {x.shape[0]}", "weight")
    o, cg, kh, kw = ws[-4:]
    if not dim_eq(sympy.sympify(cg) * groups, x.shape[1]):
        raise OpError(
            f"conv2d_fn: weight {fmt_shape(ws)} with groups={groups} needs {cg} * {groups} input channels, "
            f"got {fmt_shape(x.shape)}",
            "weight",
        )
    if not isinstance(o, int) or o % groups or not isinstance(kh, int) or not isinstance(kw, int):
        raise OpError(f"conv2d_fn: weight {fmt_shape(ws)}: fixed sizes, out channels divisible by groups", "weight")
    ins = [x, weight]
    if bias is not None:
        need_tensor(bias, "bias")
        want = (x.shape[0], o) if per_sample else (o,)
        if len(bias.shape) != len(want) or not all(dim_eq(p, q) for p, q in zip(bias.shape, want)):
            raise OpError(f"conv2d_fn: bias {fmt_shape(bias.shape)} should be {fmt_shape(want)}", "bias")
        ins.append(bias)
    st, pd, dl = tuple_n(stride, 2, "stride"), tuple_n(padding, 2, "padding"), tuple_n(dilation, 2, "dilation")
    sp = tuple(conv_out(d, k, a, p, e) for d, k, a, p, e in zip(x.shape[2:], (kh, kw), st, pd, dl))
    return Out(
        ins,
        (x.shape[0], o) + sp,
        {"stride": st, "padding": pd, "dilation": dl, "groups": groups, "bias": bias is not None},
    )


@lowering("conv2d_fn")
def lower_conv2d_fn(b, n, ins):
    a, weight_shape = n["attrs"], b.in_shapes(n)[1]
    bias = ins[2] if a["bias"] else None
    kernel = tuple(weight_shape[-2:])
    kw = {"kernel": kernel} if len(weight_shape) == 5 and all(isinstance(k, int) for k in kernel) else {}
    return b.call(runtime.conv2d_fn, (ins[0], ins[1], bias, a["stride"], a["padding"], a["dilation"], a["groups"]), kw)
