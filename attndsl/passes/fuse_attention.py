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
The same with einsums (`einsum_attention`): einsum(softmax(einsum(q, k) ...), v) when the first is a
q k^T (one contracted axis, the softmax axis in k only, one query axis) and the second contracts the
softmax axis against v; any axis order. One query per window against its window's keys (SASA's local
windows: no query axis, L = 1) is left alone: fused, SDPA measured no faster in eval and 1.6x slower compiled
in training (benchmarks/RESULTS.md).
Operands of rank above 4 (MaxViT's windows and grids, the einsum forms' batch axes) are fused when their
leading axes can merge into one (`_mergeable`): the lowering hands SDPA 4-D tensors, the layout every
exporter takes.
An additive term S = A @ B [* c] + bias (relative-position biases, -inf masks) becomes SDPA's attn_mask.
Not matched: a softmax over a tensor that is not a product (A2-Net, OCR's gather, SK/ResNeSt's radix
softmax), relations that are no dot product (SAN's, LRNet's), CCNet's criss-cross (a softmax over a concat
of two products, each row and column its own key set: SDPA would need every pixel's H + W keys and values
gathered, (H + W) times the feature map). NAT's spec gathers each window's keys and values with one-hot
products (k^2 copies of the map); fused, with them laid out for SDPA, it measured 1.35x slower under
torch.compile (benchmarks/RESULTS.md), so its spec keeps the k x k form the pass leaves alone.
"""

from ..ops import T, attention
from ..ops.layout import permute, unsqueeze
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


def _product(graph, sid, op="matmul"):
    """(A, B, scale, product node) if sid computes A @ B (or a two-operand einsum, op="einsum"), optionally
    times or divided by a constant."""
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
    if n["op"] != op or len(n["inputs"]) != 2:
        return None
    return n["inputs"][0], n["inputs"][1], scale, sid


def _bias(graph, add_id, op="matmul"):
    """(product term, bias) if add_id is P + bias with P a scaled product of the scores' full shape and the
    bias a tensor that broadcasts to it (a relative-position bias, a -inf mask): SDPA's additive attn_mask."""
    n = graph.node(add_id)
    for slot in (0, 1):
        p_id, m_id = n["inputs"][slot], n["inputs"][1 - slot]
        p, m = graph.node(p_id), graph.node(m_id)
        if p["shape"] != n["shape"] or not m["shape"] or m["op"] == "const" or len(m["shape"]) > len(n["shape"]):
            continue
        if single_use(graph, p_id) and _product(graph, p_id, op) is not None:
            return p_id, m_id
    return None


def _scores(graph, sid, op="matmul"):
    """(A, B, scale, sign, mask, product node) if sid computes A @ B (or an einsum) [* or / a constant], then
    either shifted along the last axis or plus an additive bias (mask None when there is none)."""
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
        found = _bias(graph, sid, op)
        if found is None:
            return None
        sid, mask = found
    found = _product(graph, sid, op)
    if found is None:
        return None
    a, b, scale, pid = found
    if scale < 0:
        if mask is not None:  # -(q k^T) + bias cannot move the sign into q alone with SDPA's scale > 0
            return None
        scale, sign = -scale, -sign
    return a, b, scale, sign, mask, pid


def _mergeable(shapes, mask, rank) -> bool:
    """Above 4-D (windows, grids: [B, nh, nw, heads, L, E]) the lowering merges the leading axes into one, the
    4-D layout the exporters take: q, k and v (their shapes) must have the same leading sizes (no broadcasting
    among them), and a mask of rank 4 or more leading sizes all 1, or each 1 or theirs at their rank (the
    lowering expands it: NAT's bias, one per head and position, broadcast over the batch)."""
    lead = shapes[0][: rank - 3]
    for o in shapes[1:]:
        if not all(dim_eq(a, b) for a, b in zip(o[: rank - 3], lead)):
            return False
    if mask is None or len(mask) <= 3:
        return True
    m = mask[:-3]
    return all(is_one(d) for d in m) or (
        len(m) == len(lead) and all(is_one(a) or dim_eq(a, b) for a, b in zip(m, lead))
    )


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
        x, y, scale, sign, mask, _ = found  # S = x @ y [+ mask]
        if not len(graph.node(x)["shape"]) == len(graph.node(y)["shape"]) == len(graph.node(v)["shape"]) == rank:
            continue
        shapes = [graph.node(i)["shape"] for i in (x, y, v)]
        if rank > 4 and not _mergeable(shapes, graph.node(mask)["shape"] if mask is not None else None, rank):
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


def _roles(tq, tk, ts):
    """(batch axes, query axis or none, contracted axis) of scores S = einsum(q, k) in S's letters, or None when
    S is no q k^T: S's last axis is the key axis (in k only), one axis is contracted (in q and k, not in S), at
    one more is the query axis (in q and S only; without one, L = 1, see the module doc), every other axis of S
    is a batch axis of q and k both."""
    if any(len(set(t)) != len(t) for t in (tq, tk, ts)) or ts[-1] in tq or ts[-1] not in tk:
        return None
    con = [c for c in tq if c in tk and c not in ts]
    query = [c for c in ts[:-1] if c in tq and c not in tk]
    batch = [c for c in ts[:-1] if c in tq and c in tk]
    if len(con) != 1 or len(query) != 1 or len(batch) + 1 != len(ts) - 1:
        return None
    if set(tq) != {*batch, *query, *con} or set(tk) != {*batch, ts[-1], *con}:
        return None
    return batch, query, con[0]


def _arrange(graph, nid, order, span):
    """nid with its axes in `order` (a permute node where that moves any)."""
    shape = graph.node(nid)["shape"]
    if list(order) == list(range(len(shape))):
        return nid
    out = permute(T(nid, shape), order)
    return graph.add("permute", [nid], out.attrs, out.shape, span=span)


def _terms(n):
    """([input terms], output term) of an einsum node (its equation is stored as "ab,bc->ac")."""
    lhs, out = n["attrs"]["equation"].split("->")
    return lhs.split(","), out


def _fuse_einsum(graph, nid):
    """einsum(softmax(einsum(q, k) [* c] [+ bias | - shift], -1), v) with the einsums a q k^T and an a v product:
    windows and heads in any axis order. q, k and v go to SDPA's [batch.., L, E] order (permutes), the result
    back to the einsum's output order."""
    n = graph.node(nid)
    if len(n["inputs"]) != 2:
        return None
    terms, to = _terms(n)
    for slot in (0, 1):
        amap, v, ta, tv = n["inputs"][slot], n["inputs"][1 - slot], terms[slot], terms[1 - slot]
        a = graph.node(amap)
        rank = len(a["shape"])
        if a["op"] != "softmax" or a["attrs"]["dim"] != rank - 1 or not single_use(graph, amap):
            continue
        found = _scores(graph, a["inputs"][0], "einsum")
        if found is None:
            continue
        q, k, scale, sign, mask, pid = found
        (tq, tk), ts = _terms(graph.node(pid))
        roles = _roles(tq, tk, ts)
        if roles is None or len(set(ta)) != len(ta) or len(set(tv)) != len(tv):
            continue
        batch, query, e = roles
        ren = dict(zip(ts, ta))  # the product's letters for S's axes: the map's axis i is S's axis i
        s_key, feat = ta[-1], [c for c in tv if c not in ta]
        batch_o, query_o = [ren[c] for c in batch], [ren[c] for c in query]
        if s_key in to or len(feat) != 1 or set(tv) != {*batch_o, s_key, *feat}:
            continue
        if set(to) != {*batch_o, *query_o, *feat}:
            continue
        sq, sk, sv = (graph.node(i)["shape"] for i in (q, k, v))
        order_q = [tq.index(c) for c in batch + query + [e]]
        order_k = [tk.index(c) for c in batch + [ts[-1], e]]
        order_v = [tv.index(c) for c in batch_o + [s_key] + feat]
        shapes = [tuple(sh[i] for i in o) for sh, o in ((sq, order_q), (sk, order_k), (sv, order_v))]
        if not all(dim_eq(a_, b_) for sh in shapes[1:] for a_, b_ in zip(sh[: len(batch)], shapes[0])):
            continue  # a batch axis broadcast between q, k and v: SDPA's merged batch would not fit
        order_m = [ts.index(c) for c in batch + query] + [rank - 1]
        if mask is not None:
            ms = graph.node(mask)["shape"]
            ms = (1,) * (rank - len(ms)) + tuple(ms)
            ms = tuple(ms[i] for i in order_m)
            if not _mergeable(shapes, ms, len(shapes[0])):
                continue
        span = n["span"]
        q2, k2, v2 = (_arrange(graph, i, o, span) for i, o in ((q, order_q), (k, order_k), (v, order_v)))
        if sign < 0:
            q2 = graph.add("neg", [q2], {}, graph.node(q2)["shape"], span=span)
        ins = [q2, k2, v2]
        if mask is not None:
            m = mask
            for _ in range(rank - len(graph.node(mask)["shape"])):
                out = unsqueeze(T(m, graph.node(m)["shape"]), 0)
                m = graph.add("unsqueeze", [m], out.attrs, out.shape, span=span)
            ins.append(_arrange(graph, m, order_m, span))
        out = attention(*(T(i, graph.node(i)["shape"]) for i in ins), scale=scale)
        fused = graph.add("attention", ins, out.attrs, out.shape, span=span)
        cur = batch_o + query_o + feat
        fused = _arrange(graph, fused, [cur.index(c) for c in to], span)
        graph.node(fused)["name"] = n["name"]
        graph.replace(nid, fused)
        return True
    return None


RULES = [Rule("softmax_attention", ("matmul",), _fuse), Rule("einsum_attention", ("einsum",), _fuse_einsum)]


@register(
    "fuse_attention",
    "softmax(q @ k^T * c [- shift | + bias]) @ v, its transposed and einsum forms -> one scaled_dot_product_attention"
    " node",
)
def fuse_attention(graph) -> dict:
    return dict(run_rules(graph, RULES))
