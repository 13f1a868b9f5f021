"""Fuse softmax(q @ k^T * scale) @ v into one scaled-dot-product attention node.

Matched: matmul(softmax(S, last axis), v) with S = matmul(q, kt) or S scaled by
a constant (mul or div). kt = transpose(k, -2, -1) gives k directly; otherwise
a transpose is inserted. The attention map and the scores must have no other
user (a map that is also an output cannot disappear).
"""
from ..ops import attention
from ..ops import T
from . import register
from .rewrite import Rule, run_rules, single_use


def _scores(graph, sid):
    """(q, kt, scale) if sid computes q @ kt [* or / a constant]."""
    n = graph.node(sid)
    scale = 1.0
    if n["op"] in ("mul", "div"):
        a, b = n["inputs"]
        consts = [i for i in (a, b) if graph.node(i)["op"] == "const"]
        if len(consts) != 1 or (n["op"] == "div" and consts[0] != b):
            return None
        c = graph.node(consts[0])["attrs"]["value"]
        scale = float(c) if n["op"] == "mul" else 1.0 / float(c)
        inner = b if consts[0] == a else a
        if not single_use(graph, inner):
            return None
        n, sid = graph.node(inner), inner
    if n["op"] != "matmul":
        return None
    q, kt = n["inputs"]
    return q, kt, scale


def _fuse(graph, nid):
    n = graph.node(nid)
    amap, v = n["inputs"]
    a = graph.node(amap)
    if a["op"] != "softmax" or not single_use(graph, amap):
        return None
    if a["attrs"]["dim"] != len(a["shape"]) - 1:
        return None
    sid = a["inputs"][0]
    if not single_use(graph, sid):
        return None
    found = _scores(graph, sid)
    if found is None:
        return None
    q, kt, scale = found
    ktn = graph.node(kt)
    rank = len(ktn["shape"])
    if not len(graph.node(q)["shape"]) == rank == len(graph.node(v)["shape"]):
        return None
    if ktn["op"] == "transpose" and {ktn["attrs"]["dim0"], ktn["attrs"]["dim1"]} == {rank - 2, rank - 1}:
        k = ktn["inputs"][0]
    else:
        s = list(ktn["shape"])
        s[-1], s[-2] = s[-2], s[-1]
        k = graph.add("transpose", [kt], {"dim0": rank - 2, "dim1": rank - 1}, tuple(s), span=ktn["span"])
    shapes = [graph.node(i)["shape"] for i in (q, k, v)]
    out = attention(*(T(i, s) for i, s in zip((q, k, v), shapes)), scale=scale)
    fused = graph.add("attention", [q, k, v], out.attrs, out.shape, span=n["span"], name=n["name"])
    graph.replace(nid, fused)
    return True


RULES = [Rule("softmax_attention", ("matmul",), _fuse)]


@register("fuse_attention", "softmax(q @ k^T * c) @ v -> one scaled_dot_product_attention node")
def fuse_attention(graph) -> dict:
    return dict(run_rules(graph, RULES))
