"""Constant folding: parameter-only arithmetic becomes one constant; x*1, x+0 and kin disappear."""

import math

from ..spec import arith
from . import register

_ARITH = ("add", "sub", "mul", "div", "floordiv", "mod", "pow")
_MATH = ("sqrt", "exp", "log", "abs", "neg")
# (op, constant operand slot or None for either, neutral value)
_IDENTITIES = [("mul", None, 1), ("add", None, 0), ("sub", 1, 0), ("div", 1, 1), ("pow", 1, 1)]


def _const(graph, nid):
    n = graph.node(nid)
    return n["attrs"]["value"] if n["op"] == "const" else None


def _fold(graph, nid) -> bool:
    n = graph.node(nid)
    op, ins = n["op"], n["inputs"]
    vals = [_const(graph, i) for i in ins]
    if ins and all(v is not None for v in vals) and (op in _ARITH or op in _MATH):
        if op in _ARITH:
            value = arith(op, *vals)
        elif op == "neg":
            value = -vals[0]
        else:
            value = getattr(math, op)(vals[0]) if op != "abs" else abs(vals[0])
        new = graph.add(
            "const", [], {"value": value}, None, dtype="int" if isinstance(value, int) else "float", span=n["span"]
        )
        graph.replace_uses(nid, new)
        graph.remove(nid)
        return True
    for ident_op, slot, neutral in _IDENTITIES:
        if op != ident_op or len(ins) != 2:
            continue
        for s in (0, 1) if slot is None else (slot,):
            other = ins[1 - s]
            if (
                vals[s] is not None
                and vals[s] == neutral
                and graph.node(other)["shape"] == n["shape"]
                and graph.node(other)["dtype"] == n["dtype"]
            ):
                graph.replace_uses(nid, other)
                graph.remove(nid)
                return True
    return False


@register("constfold", "evaluate arithmetic on constants and parameters; drop x*1, x+0, x-0, x/1, x**1")
def constfold(graph) -> dict:
    folded = 0
    for nid in graph.order():
        if nid in graph and _fold(graph, nid):
            folded += 1
    return {"folded": folded}
