"""Constant tensors: buffers built from static arguments (`buffer=`), and constants shaped like a tensor."""

from __future__ import annotations

import torch

from .. import runtime
from ..limits import MAX_ELEMENTS
from .registry import OpError, Out, lowering, need_int, need_size, need_tensor, op, resolve_axis


@op("dct_filters", buffer=(runtime.dct_filters, ("channels", "height", "width", "freqs")))
def dct_filters(channels, height, width, freqs):
    """FcaNet's 2-D DCT basis per channel [channels, height, width]; freqs = [[u, v], ...] or a table name
    ("top16") split channels evenly."""
    if isinstance(freqs, str):  # one of FcaNet's selections, "top16", "low4", "bot8"... (see runtime)
        if freqs[:3] not in ("top", "low", "bot") or freqs[3:] not in ("1", "2", "4", "8", "16", "32"):
            raise OpError(
                f"unknown frequency selection {freqs!r}",
                "freqs",
                "top, low or bot followed by 1, 2, 4, 8, 16 or 32, e.g. top16",
            )
        n = int(freqs[3:])
    else:
        freqs = tuple(tuple(f) for f in freqs)
        n = len(freqs)
    if channels % n:
        raise OpError(f"{channels} channels do not split evenly over {n} frequencies", "freqs")
    return Out([], (channels, height, width), {"channels": channels, "height": height, "width": width, "freqs": freqs})


@op("eye", buffer=(runtime.eye, ("n",)))
def eye(n):
    """Identity matrix [n, n]."""
    return Out([], (need_int(n, "n", 1), n), {"n": n})


@op("triu_indices", buffer=(runtime.triu_flat, ("n", "offset")))
def triu_indices(n, offset=0):
    """Flat indices of the upper triangle of an n x n matrix (row-major), as a constant."""
    need_int(n, "n", 1), need_int(offset, "offset")
    if n * n > MAX_ELEMENTS:
        raise OpError(f"a {n} x {n} matrix has more than {MAX_ELEMENTS} elements", "n", "docs/language.md, Limits")
    k = sum(max(0, n - max(i + offset, 0)) for i in range(n))
    return Out([], (k,), {"n": n, "offset": offset}, dtype="long")


@op("window_index", buffer=(runtime.window_index, ("h", "w", "mask_h", "mask_w")))
def window_index(h, w, mask_h, mask_w):
    """Constant [h*w, h*w]: entry [j, i] is the row-major offset in the mask_h x mask_w window centred on position i
    of an h x w map that covers position j, or mask_h * mask_w where j lies outside that window (PSANet's PSAMask)."""
    n = need_int(h, "h", 1) * need_int(w, "w", 1)
    need_int(mask_h, "mask_h", 1), need_int(mask_w, "mask_w", 1)
    return Out([], (n, n), {"h": h, "w": w, "mask_h": mask_h, "mask_w": mask_w}, dtype="long")


@op("relative_position_index", buffer=(runtime.relative_position_index, ("h", "w")))
def relative_position_index(h, w):
    """Constant [h*w, h*w] long: the row of a (2h-1)(2w-1)-row relative position bias table for query i, key j (Swin).

    Entry [i, j] = (yi - yj + h - 1) * (2w - 1) + (xi - xj + w - 1), positions of an h x w window row-major.
    """
    n = need_int(h, "h", 1) * need_int(w, "w", 1)
    return Out([], (n, n), {"h": h, "w": w}, dtype="long")


@lowering("dct_filters", "eye", "triu_indices", "window_index", "relative_position_index")
def lower_buffer(b, n, ins):
    return b.buffer(n)


@op("random_bases", buffer=(runtime.random_bases, ("shape", "std", "norm_dim")))
def random_bases(shape, std=1.0, norm_dim=None):
    """A buffer drawn once at build, N(0, std), L2-normalised along `norm_dim` (eps 1e-6) if given; read as a copy."""
    shape = tuple(need_int(d, "shape", 1) for d in (shape if isinstance(shape, (list, tuple)) else [shape]))
    if norm_dim is not None and not -len(shape) <= need_int(norm_dim, "norm_dim") < len(shape):
        raise OpError(f"norm_dim {norm_dim} is out of range for shape {list(shape)}", "norm_dim")
    return Out([], shape, {"shape": shape, "std": float(std), "norm_dim": norm_dim})


@lowering("random_bases")
def lower_random_bases(b, n, ins):  # read as a copy: a train-mode ema_update may change the buffer after this use
    return b.method("clone", (b.buffer(n),))


@op("arange_like")
def arange_like(x, dim):
    """The positions 0, 1, ..., n-1 along axis `dim` of x, as a vector [n] in x's dtype and device (no gradient)."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    return Out([x], (x.shape[a],), {"dim": a})


@lowering("arange_like")
def lower_arange_like(b, n, ins):
    return b.call(runtime.arange_like, (ins[0], n["attrs"]["dim"]))


@op("arange", runtime={"n"})
def arange(n, like):
    """The numbers 0, 1, ..., n-1 as a vector [n] in like's dtype and device (no gradient); n may be a run-time size:
    arange(H * W, like=x)."""
    need_tensor(like, "like")
    n = need_size(n, "n", 1)
    return Out([like], (n,), {"n": n})


@lowering("arange")
def lower_arange(b, n, ins):
    return b.call(runtime.arange_n, (n["attrs"]["n"], ins[0]))


@op("linspace", runtime={"steps"})
def linspace(start, end, steps, like):
    """`steps` evenly spaced numbers from start to end as a vector [steps] in like's dtype and device (no gradient);
    steps may be a run-time size: linspace(-1, 1, W, like=x)."""
    need_tensor(like, "like")
    steps = need_size(steps, "steps", 1)
    for v, arg in ((start, "start"), (end, "end")):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise OpError(f"`{arg}` must be a number known at compile time, got {v!r}", arg)
    return Out([like], (steps,), {"start": float(start), "end": float(end), "steps": steps})


@lowering("linspace")
def lower_linspace(b, n, ins):
    a = n["attrs"]
    return b.call(runtime.linspace_like, (a["start"], a["end"], a["steps"], ins[0]))


@op("full_like")
def full_like(x, value):
    """A constant tensor of x's shape, dtype and device, every entry `value` (no gradient)."""
    need_tensor(x)
    return Out([x], x.shape, {"value": float(value)})


@lowering("full_like")
def lower_full_like(b, n, ins):
    return b.call(torch.full_like, (ins[0], n["attrs"]["value"]))
