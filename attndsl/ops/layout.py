"""Layout ops: axes moved, merged, inserted or removed; tensors joined and split; slices and shifts."""

from __future__ import annotations

import sympy
import torch

from .. import runtime
from ..shapes import Pack, broadcast, dim_eq, fmt_shape, is_int, is_one, norm, numel, split_pack
from .registry import OpError, Out, T, lowering, need_int, need_size, need_tensor, op, resolve_axes, resolve_axis


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


@lowering("transpose")
def lower_transpose(b, n, ins):
    return b.call(torch.transpose, (ins[0], n["attrs"]["dim0"], n["attrs"]["dim1"]))


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


@lowering("permute")
def lower_permute(b, n, ins):
    return b.call(torch.permute, (ins[0], n["attrs"]["dims"]))


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
    return Out([x], x.shape[:a] + (numel(x.shape[a : b + 1]),) + x.shape[b + 1 :], {"start": a, "end": b})


@lowering("flatten")
def lower_flatten(b, n, ins):
    return b.call(torch.flatten, (ins[0], n["attrs"]["start"], n["attrs"]["end"]))


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
                raise OpError(
                    f"unsqueeze(like=) needs x to cover only the axes before the variadic part of "
                    f"{fmt_shape(ls)}, got {fmt_shape(xs)}"
                )
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


@lowering("unsqueeze")
def lower_unsqueeze(b, n, ins):
    if n["attrs"].get("like"):
        return b.call(runtime.unsqueeze_like, ins)
    return b.call(torch.unsqueeze, (ins[0], n["attrs"]["dim"]))


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


@lowering("squeeze")
def lower_squeeze(b, n, ins):
    return b.call(torch.squeeze, (ins[0], n["attrs"]["dim"]))


@op("rearrange", runtime={"sizes"})
def rearrange(x, pattern, **sizes):
    """Reshape and permute by a pattern: rearrange(x, "b c (g d) h w -> b g d (h w)", g=4)."""
    from ..patterns import infer

    need_tensor(x)
    try:
        shape, recipe = infer(pattern, x.shape, sizes)
    except ValueError as e:
        raise OpError(str(e), "pattern", 'patterns look like "b c h w -> b (h w) c"') from None
    return Out([x], shape, {"pattern": pattern, "sizes": dict(sorted(sizes.items()))})


@lowering("rearrange")
def lower_rearrange(b, n, ins):
    return b.call(runtime.rearrange, (ins[0], n["attrs"]["pattern"]), dict(n["attrs"]["sizes"]))


def _list_of_tensors(xs, arg):
    if not isinstance(xs, (list, tuple)) or not xs or not all(isinstance(v, T) for v in xs):
        raise OpError(f"`{arg}` must be a non-empty list of tensors", arg)
    return list(xs)


@op("concat", "cat", docs={"cat": "Join tensors along an existing axis (the same op as concat)."})
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


@lowering("concat", "cat")
def lower_concat(b, n, ins):
    return b.call(torch.cat, (list(ins), n["attrs"]["dim"]))


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


@lowering("stack")
def lower_stack(b, n, ins):
    return b.call(torch.stack, (list(ins), n["attrs"]["dim"]))


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


@lowering("split", "chunk")
def lower_split(b, n, ins):
    return b.call(torch.split, (ins[0], list(n["attrs"]["sizes"]), n["attrs"]["dim"]))


@op("select", static={"index"}, runtime={"index"})
def select(x, dim, index):
    """Take one index along an axis (the axis disappears); the index may be a run-time size: select(x, 2, H - 1)."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    s = list(x.shape)
    del s[a]
    return Out([x], tuple(s), {"dim": a, "index": norm(need_size(index, "index"))})


@lowering("select")
def lower_select(b, n, ins):
    return b.call(torch.select, (ins[0], n["attrs"]["dim"], n["attrs"]["index"]))


@op("narrow", runtime={"start", "length"})
def narrow(x, dim, start, length):
    """A slice start:start+length along an axis; start and length may be run-time sizes: narrow(x, 2, 1, H - 1)."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    s = list(x.shape)
    s[a] = norm(need_size(length, "length", 1))
    return Out([x], tuple(s), {"dim": a, "start": norm(need_size(start, "start")), "length": s[a]})


@lowering("narrow")
def lower_narrow(b, n, ins):
    a = n["attrs"]
    return b.call(torch.narrow, (ins[0], a["dim"], a["start"], a["length"]))


@op("roll", runtime={"shifts"})
def roll(x, shifts, dims):
    """Circular shift along axes (torch.roll): roll(x, [-s, -s], dims=[H, W]); an int shift applies to every axis
    listed."""
    need_tensor(x)
    axes = resolve_axes(x.shape, dims, "dims")
    if "S" in axes:
        raise OpError("roll needs fixed axes, not a variadic run", "dims", "list the axes: dims=[2, 3]")
    sh = list(shifts) if isinstance(shifts, (list, tuple)) else [shifts] * len(axes)
    sh = [norm(need_size(v, "shifts")) for v in sh]
    if len(sh) != len(axes):
        raise OpError(f"roll needs one shift per axis, got shifts={shifts!r} for dims={dims!r}", "shifts")
    return Out([x], x.shape, {"shifts": tuple(sh), "dims": axes})


@lowering("roll")
def lower_roll(b, n, ins):
    return b.call(torch.roll, (ins[0], n["attrs"]["shifts"], n["attrs"]["dims"]))


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


@lowering("split_like")
def lower_split_like(b, n, ins):
    return b.call(runtime.split_like, (ins[0], list(ins[1:]), n["attrs"]["dim"]))


@op("split_matrix")
def split_matrix(x, dim, n):
    """Membership [size, n] of the n contiguous parts torch.tensor_split cuts axis `dim` of x into (first size % n
    parts one longer)."""
    need_tensor(x)
    a = resolve_axis(x.shape, dim)
    if isinstance(x.shape[a], Pack):
        raise OpError("split_matrix needs a fixed axis", "dim")
    return Out([x], (x.shape[a], need_int(n, "n", 1)), {"dim": a, "n": n})


@lowering("split_matrix")
def lower_split_matrix(b, n, ins):
    return b.call(runtime.split_matrix, (ins[0], n["attrs"]["dim"], n["attrs"]["n"]))


@op("expand")
def expand(x, like):
    """Broadcast x to the shape of `like` (materialised view)."""
    need_tensor(x), need_tensor(like, "like")
    r = broadcast(x.shape, like.shape)
    if r is None or len(r) != len(like.shape):
        raise OpError(f"cannot expand {fmt_shape(x.shape)} to {fmt_shape(like.shape)}")
    return Out([x, like], like.shape)


@lowering("expand")
def lower_expand(b, n, ins):
    return b.method("expand_as", ins)


@op("view", runtime={"shape"})
def view(x, shape):
    """Reshape x to sizes: numbers, run-time sizes (view(x, [B, C, H * W])), at most one -1 (inferred); copies when
    x is not contiguous (torch's reshape)."""
    need_tensor(x)
    if not isinstance(shape, (list, tuple)) or not shape:
        raise OpError(f"`shape` must be a list of sizes, got {shape!r}", "shape")
    sizes = [norm(need_size(d, "shape", -1)) for d in shape]
    if sizes.count(-1) > 1 or 0 in sizes:
        raise OpError(f"`shape` takes positive sizes and at most one -1, got {list(shape)}", "shape")
    total = numel(x.shape)
    known = sympy.prod([sympy.sympify(d) for d in sizes if d != -1])
    out = list(sizes)
    if -1 in sizes:
        rest = norm(sympy.sympify(total) / known)
        if not (isinstance(rest, int) or is_int(rest)):
            raise OpError(
                f"cannot view {fmt_shape(x.shape)} as {list(shape)}: {total} elements are not a multiple of {known}",
                "shape",
            )
        out[sizes.index(-1)] = rest
    elif not dim_eq(total, known):
        raise OpError(
            f"cannot view {fmt_shape(x.shape)} as {list(shape)}: element counts differ ({total} and {norm(known)})",
            "shape",
            "view keeps the element count; -1 stands for the rest",
        )
    return Out([x], tuple(out), {"shape": tuple(sizes)})


@lowering("view")
def lower_view(b, n, ins):
    return b.method("reshape", (ins[0], list(n["attrs"]["shape"])))


@op("reshape")
def reshape(x, like):
    """Reshape x to the shape of `like` (same element count): undoes a flatten, e.g. back to [B, C, *S]."""
    need_tensor(x), need_tensor(like, "like")
    if not dim_eq(numel(x.shape), numel(like.shape)):
        raise OpError(
            f"cannot reshape {fmt_shape(x.shape)} to {fmt_shape(like.shape)}: element counts differ",
            hint="reshape keeps the element count; move axes with rearrange or transpose first",
        )
    return Out([x, like], like.shape)


@lowering("reshape")
def lower_reshape(b, n, ins):
    return b.method("reshape_as", ins)
