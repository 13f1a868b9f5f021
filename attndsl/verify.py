"""IR verifier: the invariants every pass must keep. Tests run it between passes.

Checks that the graph is acyclic, edges mirror each node's operand list,
every op and layer exists, operands are tensors where tensors are needed, and
that the shapes of layers, arithmetic and fused ops still follow from their
operands. Entry point: `verify`.
"""

from __future__ import annotations

import networkx as nx

from .errors import IRError
from .ops import LAYERS, OPS, OpError, T, attention, gate, layer_apply_shape, matmul
from .shapes import assuming, broadcast

_LEAVES = ("input", "const", "param", "layer", "getitem", "symsize")
_RECHECK = {"matmul": matmul, "attention": attention}


def verify(graph) -> None:
    with assuming(graph.meta.get("divisible", [])):
        _verify(graph)


def _verify(graph) -> None:
    g = graph.g
    if not nx.is_directed_acyclic_graph(g):
        raise IRError(f"the IR has a cycle: {nx.find_cycle(g)}")
    for nid in g:
        n = g.nodes[nid]
        op = n["op"]
        if op not in OPS and op not in _LEAVES:
            raise IRError(f"node {nid} has unknown op `{op}`")
        want = sorted((src, slot) for slot, src in enumerate(n["inputs"]))
        have = sorted((src, key) for src, _, key in g.in_edges(nid, keys=True))
        if want != have:
            raise IRError(f"node {nid} ({op}): edges {have} do not mirror operands {want}")
        for i in n["inputs"]:
            if i not in g:
                raise IRError(f"node {nid} ({op}) reads missing node {i}")
        shapes = [g.nodes[i]["shape"] for i in n["inputs"]]
        try:
            _check_shape(graph, nid, n, shapes)
        except OpError as e:
            raise IRError(f"node {nid} ({op}): {e}", n["span"]) from None
    for name, o in graph.outputs:
        if o not in g:
            raise IRError(f"output `{name}` refers to missing node {o}")
    for name, nid in graph.inputs:
        if nid not in g or g.nodes[nid]["op"] != "input":
            raise IRError(f"input `{name}` is not an input node")
    for name, decl in graph.layers.items():
        if decl.kind not in LAYERS:
            raise IRError(f"layer `{name}` has unknown kind `{decl.kind}`")


def _check_shape(graph, nid, n, shapes):
    op = n["op"]
    if op == "layer":
        if n["attrs"]["layer"] not in graph.layers:
            raise OpError(f"applies undeclared layer `{n['attrs']['layer']}`")
        decl = graph.layers[n["attrs"]["layer"]]
        got = layer_apply_shape(decl.kind, decl.args, T(n["inputs"][0], shapes[0]))
        _same(got, n["shape"])
    elif op in ("add", "sub", "mul", "div", "pow", "maximum", "minimum") and n["shape"] is not None:
        known = [s for s in shapes if s is not None]
        out = known[0]
        for s in known[1:]:
            out = broadcast(out, s)
            if out is None:
                raise OpError("operands do not broadcast")
        _same(out, n["shape"])
    elif op in _RECHECK:
        ts = [T(i, s) for i, s in zip(n["inputs"], shapes)]
        got = _RECHECK[op](*ts, **({"scale": n["attrs"]["scale"]} if op == "attention" else {})).shape
        _same(got, n["shape"])
    elif op == "gate":
        _same(gate(*[T(i, s) for i, s in zip(n["inputs"], shapes)]).shape, n["shape"])


def _same(got, want):
    if tuple(got) != tuple(want):
        raise OpError(f"stored shape {want} but operands give {got}")
