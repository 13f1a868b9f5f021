"""Gradient, randomness, module state and train/eval mode: dropout, detach, ema_update, rand_like, if_training."""

from __future__ import annotations

from .. import runtime
from ..errors import LoweringError
from ..shapes import broadcast, dim_eq, fmt_shape, split_pack
from .registry import OpError, Out, drop_axes, lowering, need_int, need_tensor, op, resolve_axes


@op("dropout", pure=False, static={"p"})
def dropout(x, p, channelwise=False):
    """Dropout in train mode, identity in eval; channelwise zeroes whole channels (Dropout1d/2d/3d on [B, C, *S])."""
    need_tensor(x)
    if not 0 <= p <= 1:
        raise OpError(f"dropout probability must lie in [0, 1], got {p}", "p")
    if channelwise and split_pack(x.shape)[1] is None and len(x.shape) not in (3, 4, 5):
        raise OpError(f"channelwise dropout needs [B, C, *S] with 1-3 spatial axes, got {fmt_shape(x.shape)}", "x")
    return Out([x], x.shape, {"p": float(p), "channelwise": bool(channelwise)})


@lowering("dropout")
def lower_dropout(b, n, ins):
    # reads the module's train/eval flag at run time
    a = n["attrs"]
    return b.call(runtime.apply_dropout, (ins[0], a["p"], a["channelwise"], b.fx.get_attr("training")))


@op("detach")
def detach(x):
    """Stop the gradient: the value of x, with no gradient flowing back through it."""
    need_tensor(x)
    return Out([x], x.shape)


@lowering("detach")
def lower_detach(b, n, ins):
    return b.method("detach", ins)


@op("ema_update", pure=False, tensors={"value"})
def ema_update(buffer, value, momentum, dims=None):
    """Train mode: buffer <- momentum * buffer + (1 - momentum) * mean(value, dims) (no gradient); returns value."""
    need_tensor(buffer, "buffer"), need_tensor(value)
    axes = resolve_axes(value.shape, dims) if dims is not None else ()
    mean_shape = drop_axes(value.shape, axes, True)
    if broadcast(buffer.shape, mean_shape) != tuple(buffer.shape):
        raise OpError(
            f"the mean of value {fmt_shape(mean_shape)} does not fit buffer {fmt_shape(buffer.shape)}", "value"
        )
    return Out([buffer, value], value.shape, {"momentum": float(momentum), "dims": axes})


@lowering("ema_update")
def lower_ema_update(b, n, ins):
    # updates the buffer behind a random_bases read, when the module is training
    buf = ins[0]
    if b.is_node(buf) and buf.op == "call_method" and buf.target == "clone":
        buf = buf.args[0]
    if not (b.is_node(buf) and buf.op == "get_attr"):
        raise LoweringError("ema_update needs a buffer (a random_bases value) as its first argument", n["span"])
    training = b.fx.get_attr("training")
    return b.call(runtime.ema_update, (buf, ins[1], training, n["attrs"]["momentum"], n["attrs"]["dims"]))


@op("rand_like", pure=False)
def rand_like(x, last=None):
    """Fresh U[0, 1) noise (global RNG, no gradient) shaped like x, with `last` as the size of the last axis if
    given."""
    need_tensor(x)
    if split_pack(x.shape)[1] is not None:
        raise OpError("rand_like needs a fixed-rank x")
    shape = tuple(x.shape) if last is None else tuple(x.shape[:-1]) + (need_int(last, "last", 1),)
    return Out([x], shape, {"last": last})


@lowering("rand_like")
def lower_rand_like(b, n, ins):
    return b.call(runtime.rand_like, (ins[0], n["attrs"]["last"]))


@op("if_training")
def if_training(a, b):
    """a when the module is in train mode, b in eval mode (both of one shape)."""
    need_tensor(a, "a"), need_tensor(b, "b")
    if len(a.shape) != len(b.shape) or not all(dim_eq(u, v) for u, v in zip(a.shape, b.shape)):
        raise OpError(f"if_training needs operands of one shape, got {fmt_shape(a.shape)} and {fmt_shape(b.shape)}")
    return Out([a, b], a.shape)


@lowering("if_training")
def lower_if_training(b, n, ins):
    return b.call(runtime.if_training, (ins[0], ins[1], b.fx.get_attr("training")))
