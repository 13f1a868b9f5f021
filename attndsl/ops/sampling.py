"""Resampling and indexing: interpolate, pad, sliding windows, sampling grids, gathers and draws."""

from __future__ import annotations

import sympy
import torch
import torch.nn.functional as F

from .. import runtime
from ..shapes import dim_eq, fmt_shape, norm, split_pack
from .registry import (
    OpError,
    Out,
    conv_out,
    lowering,
    need_choice,
    need_int,
    need_rank,
    need_size,
    need_tensor,
    op,
    resolve_axis,
    sizes_n,
)


@op("interpolate", runtime={"size"})
def interpolate(x, size=None, like=None, scale=None, mode="nearest", align_corners=None):
    """Resize the spatial axes to `size`, to those of `like`, or by `scale`."""
    need_tensor(x)
    need_choice(mode, ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area"), "mode")
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


@lowering("interpolate")
def lower_interpolate(b, n, ins):
    a = n["attrs"]
    kw = {"mode": a["mode"]}
    if a["align_corners"] is not None:
        kw["align_corners"] = a["align_corners"]
    if len(ins) == 2:
        return b.call(runtime.interpolate_like, ins, kw)
    if "size" in a:
        return b.call(F.interpolate, (ins[0],), {"size": b.sizes(a["size"]), **kw})
    return b.call(F.interpolate, (ins[0],), {"scale_factor": a["scale"], **kw})


@op("pad", runtime={"padding"})
def pad(x, padding, value=0.0, mode="constant"):
    """Padding, torch order: (last_lo, last_hi, second_last_lo, ...); mode constant (value), reflect, replicate or
    circular. Amounts may be run-time sizes: pad(x, [0, W % 4, 0, H % 4])."""
    need_tensor(x)
    padding = tuple(
        norm(need_size(p, "padding")) for p in (padding if isinstance(padding, (list, tuple)) else [padding])
    )
    if len(padding) % 2 or len(padding) // 2 > len(x.shape):
        raise OpError(f"pad needs pairs of sizes, got {padding}", "padding")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise OpError(f"unknown pad mode {mode!r}", "mode", "constant, reflect, replicate or circular")
    if mode != "constant" and not 1 <= len(padding) // 2 <= min(3, len(x.shape) - 2):
        raise OpError(
            f"{mode} padding pads 1 to 3 trailing axes of a [B, C, ...] input, got {padding} for {fmt_shape(x.shape)}",
            "padding",
        )
    s = list(x.shape)
    for i in range(len(padding) // 2):
        s[-1 - i] = norm(sympy.sympify(s[-1 - i]) + padding[2 * i] + padding[2 * i + 1])
    attrs = {"padding": padding, "value": float(value)}
    if mode != "constant":  # constant pads keep their old attributes (IR dumps unchanged)
        attrs["mode"] = mode
    return Out([x], tuple(s), attrs)


@lowering("pad")
def lower_pad(b, n, ins):
    a = n["attrs"]
    if a.get("mode", "constant") != "constant":
        return b.call(F.pad, (ins[0], list(a["padding"])), {"mode": a["mode"]})
    return b.call(F.pad, (ins[0], list(a["padding"])), {"value": a["value"]})


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


@lowering("unfold")
def lower_unfold(b, n, ins):
    a = n["attrs"]
    return b.call(runtime.sliding, (ins[0], a["dim"], a["size"], a["step"], a["padding"]))


@op("fold", runtime={"length"})
def fold(x, dim, length, step=1, padding=0):
    """Sum sliding windows back onto an axis, the adjoint of `unfold` (col2im along one axis): x holds
    the windows along `dim` and their entries along its last axis; the result drops the last axis and
    has `length` (a number or a symbolic size of the inputs, `H`) along `dim`, every position the sum of
    the window entries that cover it (entries that fall in the `padding` are dropped)."""
    need_tensor(x)
    if split_pack(x.shape)[1] is not None:
        raise OpError("fold needs a fixed-rank input")
    if len(x.shape) < 2:
        raise OpError(f"fold needs windows along an axis and their entries last, got {fmt_shape(x.shape)}")
    a = resolve_axis(x.shape, dim)
    if a == len(x.shape) - 1:
        raise OpError("`dim` is the axis of the windows; their entries are the last axis", "dim")
    size = x.shape[-1]
    if not isinstance(size, int):
        raise OpError(f"fold needs a fixed window size (the last axis), got {fmt_shape(x.shape)}")
    need_int(step, "step", 1), need_int(padding, "padding", 0)
    (n_out,) = sizes_n(length, 1, "length")
    if not _same_size(conv_out(n_out, size, step, padding, 1), x.shape[a]):
        raise OpError(
            f"fold: {x.shape[a]} windows of {size} with step {step} and padding {padding} do not come "
            f"from an axis of length {n_out}",
            "length",
            "the windows must be those unfold(length, size, step, padding) makes",
        )
    s = list(x.shape[:-1])
    s[a] = n_out
    return Out([x], tuple(s), {"dim": a, "length": n_out, "size": size, "step": step, "padding": padding})


def _same_size(a, b) -> bool:
    """Two sizes equal for every value of their symbols: proved by sympy, else tried at 64 assignments
    of 1..16 (floors and ceilings of one symbol that agree on every integer, which sympy cannot prove)."""
    if dim_eq(a, b):
        return True
    a, b = sympy.sympify(a), sympy.sympify(b)
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        return False
    for t in range(64):
        values = {s: 1 + (t * (2 * i + 1) + 5 * i * (t // 16)) % 16 for i, s in enumerate(symbols)}
        if a.subs(values) != b.subs(values):
            return False
    return True


@lowering("fold")
def lower_fold(b, n, ins):
    a = n["attrs"]
    (length,) = b.sizes([a["length"]])
    return b.call(runtime.fold_windows, (ins[0], a["dim"], length, a["size"], a["step"], a["padding"]))


@op("affine_grid")
def affine_grid(theta, like, align_corners=False):
    """Sampling grid [B, H, W, 2] of a batch of 2x3 affine maps, for the size of `like`."""
    need_tensor(theta, "theta"), need_tensor(like, "like")
    need_rank(like, (4,), "affine_grid", "like")
    if len(theta.shape) != 3 or theta.shape[1:] != (2, 3):
        raise OpError(f"affine_grid needs theta of shape [B, 2, 3], got {fmt_shape(theta.shape)}", "theta")
    return Out([theta, like], (theta.shape[0],) + tuple(like.shape[2:]) + (2,), {"align_corners": bool(align_corners)})


@lowering("affine_grid")
def lower_affine_grid(b, n, ins):
    return b.call(runtime.affine_grid_like, ins, {"align_corners": n["attrs"]["align_corners"]})


@op("grid_sample")
def grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    """Sample x at the grid's normalised coordinates (bilinear by default)."""
    need_tensor(x), need_tensor(grid, "grid")
    need_choice(mode, ("bilinear", "nearest", "bicubic"), "mode")
    need_choice(padding_mode, ("zeros", "border", "reflection"), "padding_mode")
    need_rank(x, (4,), "grid_sample")
    if len(grid.shape) != 4 or grid.shape[-1] != 2:
        raise OpError(f"grid_sample needs a grid [B, H, W, 2], got {fmt_shape(grid.shape)}", "grid")
    return Out(
        [x, grid],
        x.shape[:2] + grid.shape[1:3],
        {"mode": mode, "padding_mode": padding_mode, "align_corners": bool(align_corners)},
    )


@lowering("grid_sample")
def lower_grid_sample(b, n, ins):
    a = n["attrs"]
    return b.call(
        F.grid_sample, ins, {"mode": a["mode"], "padding_mode": a["padding_mode"], "align_corners": a["align_corners"]}
    )


@op("patch_grid")
def patch_grid(l, like, size):
    """Sampling grid [B, size, size, 2] of the size x size pixel patch of `like` [B, C, H, W] centred at l [B, 2] =
    (x, y) in [-1, 1] (align_corners=False pixel spacing)."""
    need_tensor(l, "l"), need_tensor(like, "like")
    need_rank(like, (4,), "patch_grid", "like")
    if len(l.shape) != 2 or not dim_eq(l.shape[1], 2) or not dim_eq(l.shape[0], like.shape[0]):
        raise OpError(f"patch_grid needs l [B, 2] for like {fmt_shape(like.shape)}, got {fmt_shape(l.shape)}", "l")
    return Out([l, like], (l.shape[0], need_int(size, "size", 1), size, 2), {"size": size})


@lowering("patch_grid")
def lower_patch_grid(b, n, ins):
    return b.call(runtime.patch_grid, (ins[0], ins[1], n["attrs"]["size"]))


@op("index_select")
def index_select(x, dim, index):
    """Gather entries along an axis at integer indices."""
    need_tensor(x), need_tensor(index, "index")
    a = resolve_axis(x.shape, dim)
    s = list(x.shape)
    s[a] = index.shape[0]
    return Out([x, index], tuple(s), {"dim": a})


@lowering("index_select")
def lower_index_select(b, n, ins):
    return b.call(torch.index_select, (ins[0], n["attrs"]["dim"], ins[1]))


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
            raise OpError(
                f"gather: index {fmt_shape(index.shape)} does not fit {fmt_shape(x.shape)} off axis {a}", "index"
            )
    return Out([x, index], tuple(x.shape[:lead]) + tuple(index.shape), {"dim": a})


@lowering("gather")
def lower_gather(b, n, ins):
    return b.call(runtime.gather, (ins[0], n["attrs"]["dim"], ins[1]))


@op("sample_onehot")
def sample_onehot(p, u, dim=-1):
    """Inverse-CDF draw from probabilities p along `dim`, given uniform noise u in [0, 1) shaped like p without
    that axis: the one-hot of the first index whose cumulative probability exceeds u (no gradient)."""
    need_tensor(p, "p"), need_tensor(u, "u")
    a = resolve_axis(p.shape, dim)
    rest = tuple(p.shape[:a]) + tuple(p.shape[a + 1 :])
    if len(u.shape) != len(rest) or not all(dim_eq(x, y) for x, y in zip(u.shape, rest)):
        raise OpError(
            f"sample_onehot: u should be {fmt_shape(rest)} (p {fmt_shape(p.shape)} without axis {a}), "
            f"got {fmt_shape(u.shape)}",
            "u",
        )
    return Out([p, u], p.shape, {"dim": a})


@lowering("sample_onehot")
def lower_sample_onehot(b, n, ins):
    return b.call(runtime.sample_onehot, (ins[0], ins[1], n["attrs"]["dim"]))
