"""Fold a gate and its product into one node: x * act(s) and x * (1 + act(s)).

The activation may sit behind a shape-only op (`unsqueeze(..., like=x)`); the
shape op then moves onto the gate's input. The activation (and the 1 + ...)
must have no other user.
"""

from ..ops import GATE_ACTS as _ACTS
from ..shapes import broadcast
from . import register
from .rewrite import Rule, run_rules, single_use


def _gate_of(graph, nid):
    """(s, act, plus_one, shape op) if nid is act(s), 1 + act(s), or a reshaped one of those."""
    n = graph.node(nid)
    reshape = None
    if n["op"] == "unsqueeze" and single_use(graph, nid):
        reshape, nid = nid, n["inputs"][0]
        n = graph.node(nid)
    plus_one = False
    if n["op"] == "add" and single_use(graph, nid):
        a, b = n["inputs"]
        one = [i for i in (a, b) if graph.node(i)["op"] == "const" and graph.node(i)["attrs"]["value"] == 1]
        if len(one) == 1:
            plus_one, nid = True, (b if one[0] == a else a)
            n = graph.node(nid)
    if n["op"] in _ACTS and single_use(graph, nid):
        return n["inputs"][0], n["op"], plus_one, reshape
    return None


def _fuse(graph, nid):
    n = graph.node(nid)
    for slot in (1, 0):
        x, g = n["inputs"][1 - slot], n["inputs"][slot]
        if graph.node(x)["op"] == "const":
            continue
        found = _gate_of(graph, g)
        if found is None:
            continue
        s, act, plus_one, reshape = found
        # x * (1 + act(s)) is computed as x + x * act(s): x must already have the result's shape
        if plus_one and broadcast(graph.node(x)["shape"], n["shape"]) != graph.node(x)["shape"]:
            return None
        if reshape is not None:
            r = graph.node(reshape)
            s = graph.add("unsqueeze", [s] + r["inputs"][1:], r["attrs"], r["shape"], span=r["span"])
        fused = graph.add(
            "gate", [x, s], {"act": act, "plus_one": plus_one}, n["shape"], span=n["span"], name=n["name"]
        )
        graph.replace(nid, fused)
        return True
    return None


RULES = [Rule("gate", ("mul",), _fuse)]


@register("fuse_gate", "x * sigmoid(s) and x * (1 + tanh(s)) -> one gate node")
def fuse_gate(graph) -> dict:
    return dict(run_rules(graph, RULES))
