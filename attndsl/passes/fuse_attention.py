"""Fuse softmax(q @ k^T * scale) @ v into one scaled-dot-product attention node.

Matched, with S the scores and softmax over S's last axis:
- `softmax(S) @ v`, the usual form;
- `v @ softmax(S, axis -2)`, the transposed form (GLTR): it is (softmax(S^T) @ v^T)^T, so it
  becomes transpose(attention(B^T, A, v^T)) for S = A @ B;
- S = A @ B, optionally scaled by a constant (mul or div) and optionally shifted by a term that
  is constant along the softmax axis (`S - amax(S, keepdim)`, DANet's `amax(S) - S`): softmax
  does not see such a shift, and a subtracted S flips the sign (negated q, scale stays positive:
  SDPA's math path takes the square root of the scale).
B = transpose(k) gives k directly; otherwise a transpose is inserted (two transposes cancel).
The map, the scores and every product in between must have no other user (a map that is also
an output cannot disappear); only the shift's own reduction may read the scores besides.
Not matched (and why, see the pass table in the README): a softmax over a tensor that is not a
product (A2-Net, OCR's gather, SK/ResNeSt's radix softmax), windows written elementwise (SASA,
SAN), CCNet's criss-cross (a softmax over a concat of two products).
Operands of rank above 4 (MaxViT's windows and grids) are fused when their leading axes can merge into
one (`_mergeable`): the lowering hands SDPA 4-D tensors, the layout every exporter takes.
An additive term S = A @ B [* c] + bias (relative-position biases, -inf masks) becomes SDPA's attn_mask.
"""

from ..ops import T, attention
from ..shapes import dim_eq, is_one
from . import register
from .rewrite import Rule, run_rules, single_use


def _const(graph, nid):
    n = graph.node(nid)
    return float(n["attrs"]["value"]) if n["op"] == "const" else None


def _t(graph, nid, span=None):
    """nid with its last two axes swapped: the input of a transpose of them, else a new transpose."""
    n = graph.node(nid)
    rank = len(n["shape"])
    if n["op"] == "transpose" and {n["attrs"]["dim0"], n["attrs"]["dim1"]} == {rank - 2, rank - 1}:
        return n["inputs"][0]
    s = list(n["shape"])
    s[-1], s[-2] = s[-2], s[-1]
    return graph.add("transpose", [nid], {"dim0": rank - 2, "dim1": rank - 1}, tuple(s), span=n["span"] or span)


def _shift(graph, sub_id):
    """(S, sign) if sub_id is S - c or c - S with c of size 1 on the last axis (softmax cannot tell)."""
    n = graph.node(sub_id)
    for slot in (0, 1):
        s_id, c_id = n["inputs"][slot], n["inputs"][1 - slot]
        c, s = graph.node(c_id), graph.node(s_id)
        if s["shape"] != n["shape"] or not c["shape"] or c["shape"][-1] != 1 or c["op"] == "const":
            continue
        if len(c["shape"]) > len(s["shape"]):
            continue
        # S may be read by the shift term itself (amax(S)), which then dies with the sub
        others = [u for u in graph.users(s_id) if u != sub_id]
        if others and not (others == [c_id] and single_use(graph, c_id)):
            continue
        return s_id, (1.0 if slot == 0 else -1.0)
    return None


def _product(graph, sid):
    """(A, B, scale) if sid computes A @ B, optionally times or divided by a constant."""
    scale = 1.0
    n = graph.node(sid)
    if n["op"] in ("mul", "div"):
        a, b = n["inputs"]
        consts = [i for i in (a, b) if _const(graph, i) is not None]
        if len(consts) != 1 or (n["op"] == "div" and consts[0] != b):
            return None
        c = _const(graph, consts[0])
        if c == 0:
            return None
        scale = c if n["op"] == "mul" else 1.0 / c
        sid = b if consts[0] == a else a
        n = graph.node(sid)
        if not single_use(graph, sid):
            return None
    if n["op"] != "matmul":
        return None
    return n["inputs"][0], n["inputs"][1], scale


def _bias(graph, add_id):
    """(product term, bias) if add_id is P + bias with P a scaled product of the scores' full shape and the
    bias a tensor that broadcasts to it (a relative-position bias, a -inf mask): SDPA's additive attn_mask."""
    n = graph.node(add_id)
    for slot in (0, 1):
        p_id, m_id = n["inputs"][slot], n["inputs"][1 - slot]
        p, m = graph.node(p_id), graph.node(m_id)
        if p["shape"] != n["shape"] or not m["shape"] or m["op"] == "const" or len(m["shape"]) > len(n["shape"]):
            continue
        if single_use(graph, p_id) and _product(graph, p_id) is not None:
            return p_id, m_id
    return None


def _scores(graph, sid):
    """(A, B, scale, sign, mask) if sid computes A @ B [* or / a constant], then either shifted along the last
    axis or plus an additive bias (mask None when there is none)."""
    sign, mask = 1.0, None
    n = graph.node(sid)
    if n["op"] == "sub":
        found = _shift(graph, sid)
        if found is None:
            return None
        sid, sign = found
    elif not single_use(graph, sid):
        return None
    elif n["op"] == "add":
        found = _bias(graph, sid)
        if found is None:
            return None
        sid, mask = found
    found = _product(graph, sid)
    if found is None:
        return None
    a, b, scale = found
    if scale < 0:
        if mask is not None:  # -(q k^T) + bias cannot move the sign into q alone with SDPA's scale > 0
            return None
        scale, sign = -scale, -sign
    return a, b, scale, sign, mask


def _mergeable(graph, operands, mask, rank) -> bool:
    """Above 4-D (windows, grids: [B, nh, nw, heads, L, E]) the lowering merges the leading axes into one, the
    4-D layout the exporters take: q, k and v must have the same leading sizes (no broadcasting among them),
    and a mask of rank 4 or more leading sizes all 1 or the same as theirs."""
    lead = graph.node(operands[0])["shape"][: rank - 3]
    for o in operands[1:]:
        if not all(dim_eq(a, b) for a, b in zip(graph.node(o)["shape"][: rank - 3], lead)):
            return False
    if mask is None or len(graph.node(mask)["shape"]) <= 3:
        return True
    m = graph.node(mask)["shape"][:-3]
    return all(is_one(d) for d in m) or (len(m) == len(lead) and all(dim_eq(a, b) for a, b in zip(m, lead)))


def _fuse(graph, nid):
    n = graph.node(nid)
    rank = len(n["shape"])
    left, right = n["inputs"]
    for amap, v, axis, transposed in ((left, right, rank - 1, False), (right, left, rank - 2, True)):
        a = graph.node(amap)
        if a["op"] != "softmax" or a["attrs"]["dim"] != axis or not single_use(graph, amap):
            continue
        found = _scores(graph, a["inputs"][0])
        if found is None:
            continue
        x, y, scale, sign, mask = found  # S = x @ y [+ mask]
        if not len(graph.node(x)["shape"]) == len(graph.node(y)["shape"]) == len(graph.node(v)["shape"]) == rank:
            continue
        if rank > 4 and not _mergeable(graph, (x, y, v), mask, rank):
            continue
        if mask is not None and transposed:
            mask = _t(graph, mask, n["span"]) if len(graph.node(mask)["shape"]) >= 2 else None
            if mask is None:
                continue
        span = n["span"]
        if transposed:  # v @ softmax(x @ y, -2) = (softmax(y^T x^T) @ v^T)^T
            q, k, v = _t(graph, y, span), x, _t(graph, v, span)
        else:
            q, k = x, _t(graph, y, span)
        if sign < 0:
            q = graph.add("neg", [q], {}, graph.node(q)["shape"], span=span)
        ins = [q, k, v] + ([mask] if mask is not None else [])
        out = attention(*(T(i, graph.node(i)["shape"]) for i in ins), scale=scale)
        fused = graph.add("attention", ins, out.attrs, out.shape, span=span, name=None if transposed else n["name"])
        if transposed:
            fused = graph.add(
                "transpose", [fused], {"dim0": rank - 2, "dim1": rank - 1}, n["shape"], span=span, name=n["name"]
            )
        graph.replace(nid, fused)
        return True
    return None


RULES = [Rule("softmax_attention", ("matmul",), _fuse)]


@register(
    "fuse_attention",
    "softmax(q @ k^T * c [- shift | + bias]) @ v and its transposed form -> one scaled_dot_product_attention node",
)
def fuse_attention(graph) -> dict:
    return dict(run_rules(graph, RULES))
