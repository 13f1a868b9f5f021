"""Reductions over axes, statistics, and the normalisations along an axis (softmax, normalize, hardmax)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import runtime
from ..errors import LoweringError
from ..shapes import fmt_shape, split_pack
from .registry import OPS, OpError, Out, drop_axes, lowering, need_tensor, op, register, resolve_axes, resolve_axis

# name -> (torch callable, doc)
REDUCTIONS = {
    "sum": (torch.sum, "Sum over axes (`spatial` for all axes after channels)."),
    "mean": (torch.mean, "Mean over axes (`spatial` for all axes after channels)."),
    "amax": (torch.amax, "Maximum over axes (`spatial` for all axes after channels)."),
    "amin": (torch.amin, "Minimum over axes (`spatial` for all axes after channels)."),
    "logsumexp": (torch.logsumexp, "log(sum(exp(x))) over axes, computed stably."),
    "prod": (torch.prod, "Product over one fixed axis."),
}


def _reduce(x, dims=None, keepdim=False):
    """Reduce over axes (`spatial` for all axes after channels)."""
    need_tensor(x)
    if x.shape is None:  # a runtime number (numel): max(n - 1, 1) would otherwise crash in resolve_axes
        raise OpError(
            "reductions and max/min of a runtime number (numel) are not supported",
            "x",
            "clamp a tensor instead: clamp(t, min=1)",
        )
    axes = resolve_axes(x.shape, dims)
    return Out([x], drop_axes(x.shape, axes, keepdim), {"dims": axes, "keepdim": bool(keepdim)})


for _n, (_, _doc) in REDUCTIONS.items():
    register(OPS, _n, _reduce, doc=_doc)


@op(
    "max",
    "min",
    docs={
        "max": "Tensor max over axes (the static max of numbers is a builtin too).",
        "min": "Tensor min over axes (the static min of numbers is a builtin too).",
    },
)
def max_(x, dims=None, keepdim=False):
    """Tensor max/min over axes (the static max/min of numbers is a builtin too)."""
    return _reduce(x, dims, keepdim)


@lowering(*REDUCTIONS, "max", "min")
def lower_reduction(b, n, ins):
    a, name = n["attrs"], {"max": "amax", "min": "amin"}.get(n["op"], n["op"])
    dims = b.dims(ins[0], b.in_shapes(n)[0], a["dims"])
    if name == "prod":
        if len(a["dims"]) != 1 or "S" in a["dims"]:
            raise LoweringError("prod reduces over one fixed axis only")
        return b.call(torch.prod, (ins[0], a["dims"][0]), {"keepdim": a["keepdim"]})
    return b.call(REDUCTIONS[name][0], (ins[0], dims), {"keepdim": a["keepdim"]})


REDUCE_KINDS = {
    "avg": "mean",
    "mean": "mean",
    "max": "amax",
    "amax": "amax",
    "min": "amin",
    "amin": "amin",
    "sum": "sum",
    "lse": "logsumexp",
    "logsumexp": "logsumexp",
    "lp": "l2",
    "l2": "l2",
}


@op("reduce")
def reduce_(x, kind, dims=None, keepdim=False):
    """Reduce over axes by a named kind (a str parameter): avg, max, min, sum, lse, lp (L2: sqrt of sum of squares)."""
    if kind not in REDUCE_KINDS:
        raise OpError(f"unknown reduction kind {kind!r}", "kind", f"kinds: {', '.join(REDUCE_KINDS)}")
    out = _reduce(x, dims, keepdim)
    out.attrs["kind"] = REDUCE_KINDS[kind]
    return out


@lowering("reduce")
def lower_reduce(b, n, ins):  # kind fixed at compile time: lowers to the plain torch reduction
    a = n["attrs"]
    dims = b.dims(ins[0], b.in_shapes(n)[0], a["dims"])
    if a["kind"] == "l2":
        sq = b.call(torch.sum, (b.call(torch.square, (ins[0],)), dims), {"keepdim": a["keepdim"]})
        return b.call(torch.sqrt, (sq,))
    return b.call(REDUCTIONS[a["kind"]][0], (ins[0], dims), {"keepdim": a["keepdim"]})


@op(
    "var",
    "std",
    docs={
        "var": "Variance over axes; unbiased (n-1) by default, as torch.",
        "std": "Standard deviation over axes; unbiased (n-1) by default, as torch.",
    },
)
def var(x, dims=None, keepdim=False, unbiased=True):
    """Variance or standard deviation over axes; unbiased (n-1) by default, as torch."""
    out = _reduce(x, dims, keepdim)
    out.attrs["unbiased"] = bool(unbiased)
    return out


@lowering("var", "std")
def lower_var(b, n, ins):
    a = n["attrs"]
    dims = b.dims(ins[0], b.in_shapes(n)[0], a["dims"])
    return b.call(
        torch.var if n["op"] == "var" else torch.std,
        (ins[0], dims),
        {"correction": 1 if a["unbiased"] else 0, "keepdim": a["keepdim"]},
    )


@op("cov")
def cov(x, unbiased=True):
    """Covariance of the rows of x [..., d, n] over its last axis (a batched torch.cov): [..., d, d]."""
    need_tensor(x)
    if len(x.shape) < 2 or split_pack(x.shape)[1] is not None:
        raise OpError(
            f"cov needs a fixed-rank input [..., d, n], got {fmt_shape(x.shape)}",
            hint="flatten the observation axes into the last one first: flatten(x, 2)",
        )
    return Out([x], x.shape[:-1] + (x.shape[-2],), {"unbiased": bool(unbiased)})


@lowering("cov")
def lower_cov(b, n, ins):
    return b.call(runtime.cov, ins, {"unbiased": n["attrs"]["unbiased"]})


@op("numel")
def numel_op(x, dims=None):
    """Number of elements of x over axes (all by default; `spatial`: the positions), a runtime number: z / numel(x,
    dims=spatial)."""
    need_tensor(x)
    return Out([x], None, {"dims": resolve_axes(x.shape, dims)})


@lowering("numel")
def lower_numel(b, n, ins):
    return b.call(runtime.numel_over, (ins[0], b.dims(ins[0], b.in_shapes(n)[0], n["attrs"]["dims"])))


@op("softmax", "log_softmax", docs={"log_softmax": "Log of the softmax over one axis, computed stably."})
def softmax(x, dim=-1):
    """Softmax over one axis."""
    need_tensor(x)
    return Out([x], x.shape, {"dim": resolve_axis(x.shape, dim)})


@lowering("softmax", "log_softmax")
def lower_softmax(b, n, ins):
    return b.call(torch.softmax if n["op"] == "softmax" else torch.log_softmax, (ins[0], n["attrs"]["dim"]))


@op("normalize", static={"p"})
def normalize(x, dim=1, p=2.0, eps=1e-12):
    """x / max(||x||_p, eps) along an axis."""
    need_tensor(x)
    return Out([x], x.shape, {"dim": resolve_axis(x.shape, dim), "p": float(p), "eps": float(eps)})


@lowering("normalize")
def lower_normalize(b, n, ins):
    a = n["attrs"]
    return b.call(F.normalize, ins, {"p": a["p"], "dim": a["dim"], "eps": a["eps"]})


@op("hardmax")
def hardmax(x, dim=-1):
    """One-hot of the argmax along an axis (the first maximum on ties), in x's dtype, without gradient."""
    need_tensor(x)
    return Out([x], x.shape, {"dim": resolve_axis(x.shape, dim)})


@lowering("hardmax")
def lower_hardmax(b, n, ins):
    return b.call(runtime.hardmax, (ins[0], n["attrs"]["dim"]))
