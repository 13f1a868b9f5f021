"""Reassociate matmul chains: (A @ B) @ C <-> A @ (B @ C), whichever needs fewer multiply-adds.

A [.., m, k], B [.., k, n], C [.., n, p]: (A B) C costs m k n + m n p per batch entry and
A (B C) costs k n p + m k p. The costs are sympy polynomials in the IR's symbolic sizes (B, N,
H*W...) with the parameters' widths as numbers. The pass rewrites when the other order is cheaper
as the symbolic sizes grow together (every symbol -> t, t -> oo: the leading coefficient of
old - new is positive), i.e. at feature-map sizes, N >> d: linear attention's (Q K^T) V becomes
Q (K^T V), O(N d^2) instead of O(N^2 d). Each rewrite lowers that leading cost, so the rules
reach a fixed point. A chain through anything else (a softmax, a scale, a transpose) is not a
chain here, and the inner product must have no other reader (nor be an output): it disappears.
"""

from __future__ import annotations

import sympy

from ..ops import OpError, T, matmul
from . import register
from .rewrite import Rule, run_rules, single_use


def _numel(dims):
    out = sympy.Integer(1)
    for d in dims:
        out *= d
    return out


def _cost(a_shape, b_shape, out_shape):
    """Multiply-adds of a @ b: every output entry sums over the contracted axis."""
    return _numel(out_shape) * a_shape[-1]


def cheaper(old, new) -> bool:
    """new costs less than old once the symbolic sizes are large (all of them -> t, t -> oo)."""
    diff = sympy.expand(sympy.sympify(old) - sympy.sympify(new))
    if diff.is_number:
        return bool(diff > 0)
    t = sympy.Symbol("t", positive=True)
    grown = sympy.expand(diff.subs({s: t for s in diff.free_symbols}, simultaneous=True))
    if grown == 0 or not grown.is_polynomial(t):
        return False
    return bool(sympy.Poly(grown, t).LC() > 0)


def _chain(graph, nid):
    """(a, b, c, left) if nid is (a @ b) @ c (left) or a @ (b @ c), the inner product read only here."""
    outer = graph.node(nid)
    for left, inner in ((True, outer["inputs"][0]), (False, outer["inputs"][1])):
        if graph.node(inner)["op"] == "matmul" and single_use(graph, inner):
            x, y = graph.node(inner)["inputs"]
            other = outer["inputs"][1] if left else outer["inputs"][0]
            yield (x, y, other, True) if left else (other, x, y, False)


def _rewrite(graph, nid):
    outer = graph.node(nid)
    shape = {i: graph.node(i)["shape"] for i in outer["inputs"]}
    for a, b, c, left in _chain(graph, nid):
        sa, sb, sc = (graph.node(i)["shape"] for i in (a, b, c))
        inner = outer["inputs"][0] if left else outer["inputs"][1]
        si = graph.node(inner)["shape"]
        old = _cost(*((sa, sb) if left else (sb, sc)), si) + _cost(*[shape[i] for i in outer["inputs"]], outer["shape"])
        # the other order: its inner product first, with the shape matmul's own rule gives it
        first = (b, c) if left else (a, b)
        try:  # the other order's batch axes need not broadcast the same way
            t = matmul(*(T(i, graph.node(i)["shape"]) for i in first)).shape
            pair = (sa, t) if left else (t, sc)
            out = matmul(T(None, pair[0]), T(None, pair[1])).shape
        except OpError:
            continue
        if tuple(out) != tuple(outer["shape"]):
            continue
        new = _cost(*[graph.node(i)["shape"] for i in first], t) + _cost(*pair, out)
        if not cheaper(old, new):
            continue
        span = graph.node(inner)["span"]
        mid = graph.add("matmul", list(first), {}, tuple(t), span=span)
        ops = [a, mid] if left else [mid, c]
        graph.replace(nid, graph.add("matmul", ops, {}, outer["shape"], span=outer["span"], name=outer["name"]))
        return True
    return None


RULES = [Rule("reassociate", ("matmul",), _rewrite)]


@register("reassociate", "(A @ B) @ C <-> A @ (B @ C) when the other order needs fewer multiply-adds at large sizes")
def reassociate(graph) -> dict:
    fired = run_rules(graph, RULES)["reassociate"]
    kept = sum(1 for nid in graph.order() if graph.node(nid)["op"] == "matmul" for _ in _chain(graph, nid))
    return {"reassociated": fired, "kept": kept}
