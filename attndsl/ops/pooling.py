"""Pooling over the spatial axes: adaptive (to a size) and windowed, fixed-rank or variadic."""

from __future__ import annotations

import sympy
import torch.nn.functional as F

from .. import runtime
from ..shapes import Pack, fmt_shape, split_pack
from .registry import OpError, Out, conv_out, lowering, need_int, need_rank, need_tensor, op, sizes_n, tuple_n


@op(
    "adaptive_avg_pool",
    "adaptive_max_pool",
    runtime={"size"},
    docs={
        "adaptive_avg_pool": "Average-pool a [B, C, *spatial] input to a fixed spatial size (rank from the input).",
        "adaptive_max_pool": "Max-pool a [B, C, *spatial] input to a fixed spatial size (rank from the input).",
    },
)
def adaptive_pool(x, size):
    """Pool a [B, C, *spatial] input to a fixed spatial size (rank from the input)."""
    need_tensor(x)
    need_rank(x, (3, 4, 5), "adaptive pooling")
    n = len(x.shape) - 2
    size = sizes_n(size, n, "size")
    return Out([x], x.shape[:2] + size, {"size": size})


@lowering("adaptive_avg_pool", "adaptive_max_pool")
def lower_adaptive_pool(b, n, ins):
    # pooling to the size the input already has is the identity, and not free in torch
    return b.call(runtime.adaptive_pool, (ins[0], n["op"][9:12], b.sizes(n["attrs"]["size"])))


@op("max_pool")
def pool(x, kernel, stride=None, padding=0, ceil_mode=False):
    """Window pooling over the spatial axes of [B, C, *spatial] (rank from the input)."""
    need_tensor(x)
    return _pool(x, kernel, stride, padding, ceil_mode)


@op("avg_pool")
def avg_pool(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Window pooling over the spatial axes of [B, C, *spatial]; count_include_pad=false divides by the in-bounds
    positions only."""
    need_tensor(x)
    out = _pool(x, kernel, stride, padding, ceil_mode)
    if not count_include_pad:  # the default keeps no attribute: IR dumps of existing specs do not change
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


@lowering("max_pool", "avg_pool")
def lower_pool(b, n, ins):
    a, shape = n["attrs"], b.in_shapes(n)[0]
    pool_kw = {"count_include_pad": False} if a.get("count_include_pad") is False else {}
    if split_pack(shape)[1] is not None:
        return b.call(runtime.pool_nd, (ins[0], n["op"], a["kernel"], a["stride"], a["padding"]), pool_kw)
    fn = getattr(F, f"{n['op']}{len(shape) - 2}d")
    return b.call(
        fn,
        (ins[0], a["kernel"]),
        {
            "stride": a["stride"],
            "padding": a["padding"],
            **({"ceil_mode": True} if a.get("ceil_mode") else {}),
            **pool_kw,
        },
    )
