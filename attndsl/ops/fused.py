"""Fused ops that passes make (usable directly): scaled dot-product attention and gates."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import runtime
from ..shapes import broadcast, dim_eq, fmt_shape, is_one, norm, split_pack
from .elementwise import elementwise_shape
from .registry import OpError, Out, lowering, need_tensor, op


@op("attention")
def attention(q, k, v, mask=None, scale=None):
    """softmax(q @ k^T * scale + mask) @ v over the last two axes: scaled dot-product attention; the optional
    additive mask (a bias, or -inf where a position is masked) broadcasts to the scores [.., L, S]."""
    for t, n in ((q, "q"), (k, "k"), (v, "v")) + (((mask, "mask"),) if mask is not None else ()):
        need_tensor(t, n)
        if len(t.shape) < (1 if n == "mask" else 2) or split_pack(t.shape)[1] is not None:
            raise OpError(f"attention needs fixed-rank operands, got {fmt_shape(t.shape)}", n)
    if not dim_eq(q.shape[-1], k.shape[-1]) or not dim_eq(k.shape[-2], v.shape[-2]):
        raise OpError(
            f"attention shapes do not fit: q {fmt_shape(q.shape)}, k {fmt_shape(k.shape)}, v {fmt_shape(v.shape)}"
        )
    scores = q.shape[:-1] + (k.shape[-2],)
    if mask is not None and broadcast(mask.shape, scores) != tuple(norm(d) for d in scores):
        raise OpError(
            f"attention mask {fmt_shape(mask.shape)} does not broadcast to the scores {fmt_shape(scores)}", "mask"
        )
    return Out([q, k, v] + ([mask] if mask is not None else []), q.shape[:-1] + (v.shape[-1],), {"scale": scale})


@lowering("attention")
def lower_attention(b, n, ins):
    """SDPA on 4-D operands [batch, heads, L, E] and a 4-D mask: the layout every exporter takes, and the one
    the CPU's fused kernel needs (with a mask of lower rank SDPA takes its unfused math path). 2-D and 3-D
    operands gain unit axes; above 4-D (windows, grids: [B, nh, nw, heads, L, E]) the leading axes merge into
    one and come back after (fuse_attention checks that they can, the mask's too)."""
    kw = {} if n["attrs"]["scale"] is None else {"scale": n["attrs"]["scale"]}
    in_shapes = b.in_shapes(n)
    ins, mask = list(ins[:3]), (ins[3] if len(ins) > 3 else None)
    if len({len(s) for s in in_shapes[:3]}) != 1:  # operands of different ranks: SDPA broadcasts them as given
        return b.call(F.scaled_dot_product_attention, ins, kw if mask is None else {"attn_mask": mask, **kw})
    rank, mrank = len(in_shapes[0]), len(in_shapes[3]) if mask is not None else 0
    unit = {2: (0, 0), 3: (1,)}.get(rank, ())
    for d in unit:
        ins = [b.call(torch.unsqueeze, (t, d)) for t in ins]
        if mrank == rank:  # a mask of lower rank gets leading unit axes below
            mask = b.call(torch.unsqueeze, (mask, d))
    mrank = 4 if unit and mrank == rank else mrank
    if rank > 4:
        # the leading sizes to restore after: q's (fixed ones as numbers, the others read at run time)
        sizes = [
            d if isinstance(d, int) else b.method("size", (ins[0], i)) for i, d in enumerate(n["shape"][: rank - 3])
        ]
        ins = [b.call(torch.flatten, (t, 0, rank - 4)) for t in ins]
        if mrank > 3:
            if not all(is_one(d) for d in in_shapes[3][:-3]):  # sizes 1 among q's: broadcast them first
                mask = b.method("expand", (mask, sizes + [-1, -1, -1]))
            mask, mrank = b.call(torch.flatten, (mask, 0, mrank - 4)), 4
    if mask is not None:
        for _ in range(4 - mrank):
            mask = b.call(torch.unsqueeze, (mask, 0))
        kw = {"attn_mask": mask, **kw}
    out = b.call(F.scaled_dot_product_attention, ins, kw)
    for d in reversed(unit):
        out = b.call(torch.squeeze, (out, d))
    if rank > 4:
        # reshape to sizes read at run time: with unflatten, the TorchScript ONNX exporter did not keep the
        # batch size dynamic. A contiguous copy first: the dynamo ONNX exporter traces SDPA with a contiguous
        # output, decomposes it into the fused kernel's [B', L, heads, E] layout, and then turns a later merge of
        # the heads into a view that the first layout cannot take (`contiguous()` is dropped as a no-op there)
        out = b.call(torch.clone, (out,), {"memory_format": torch.contiguous_format})
        tail = [
            d if isinstance(d, int) else b.method("size", (out, i + 1)) for i, d in enumerate(n["shape"][rank - 3 :])
        ]
        out = b.method("reshape", (out, sizes + tail))
    return out


GATE_ACTS = ("sigmoid", "tanh", "hardsigmoid")  # what a gate may apply (fuse_gate fuses these)


@op("gate")
def gate(x, s, act="sigmoid", plus_one=False):
    """x * act(s) (or x * (1 + act(s))): a gate and its product in one node."""
    if act not in GATE_ACTS:
        raise OpError(
            f"a gate applies one of {', '.join(GATE_ACTS)}, got {act!r}",
            "act",
            "other activations: x * act(s) written out",
        )
    r = elementwise_shape(x, s).shape
    return Out([x, s], r, {"act": act, "plus_one": bool(plus_one)})


@lowering("gate")
def lower_gate(b, n, ins):
    return b.call(runtime.gate, ins, {"act": n["attrs"]["act"], "plus_one": n["attrs"]["plus_one"]})
