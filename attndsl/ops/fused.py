"""Fused ops that passes make (usable directly): scaled dot-product attention and gates."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import runtime
from ..shapes import broadcast, dim_eq, fmt_shape, norm, split_pack
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
    kw = {} if n["attrs"]["scale"] is None else {"scale": n["attrs"]["scale"]}
    in_shapes = b.in_shapes(n)
    ins, mask = list(ins[:3]), (ins[3] if len(ins) > 3 else None)
    # 2-D and 3-D operands run as 4-D ([B, 1, L, E]): the fused op's layout every exporter accepts
    lead = {2: (0, 0), 3: (1,)}.get(len(in_shapes[0])) if len({len(s) for s in in_shapes[:3]}) == 1 else None
    for d in lead or ():
        ins = [b.call(torch.unsqueeze, (t, d)) for t in ins]
        if mask is not None and len(in_shapes[3]) == len(in_shapes[0]):  # a lower-rank mask broadcasts as is
            mask = b.call(torch.unsqueeze, (mask, d))
    if mask is not None:
        kw = {"attn_mask": mask, **kw}
    out = b.call(F.scaled_dot_product_attention, ins, kw)
    for d in reversed(lead or ()):
        out = b.call(torch.squeeze, (out, d))
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
