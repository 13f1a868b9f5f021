"""Pattern rewriting: a rule is (name, root ops, fn); fn rewrites in place and returns True, or None."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str
    roots: tuple
    fn: Callable


def run_rules(graph, rules, max_rounds: int = 20) -> Counter:
    """Apply rules until none fires; fail loudly if that never happens."""
    fired: Counter = Counter()
    for _ in range(max_rounds):
        changed = False
        for nid in graph.order():
            if nid not in graph:
                continue
            op = graph.node(nid)["op"]
            for rule in rules:
                if op in rule.roots and nid in graph and rule.fn(graph, nid):
                    fired[rule.name] += 1
                    changed = True
                    break
        if not changed:
            return fired
    raise RuntimeError(f"rewrite rules {[r.name for r in rules]} did not reach a fixed point")


def single_use(graph, nid) -> bool:
    return graph.n_uses(nid) == 1


def producer(graph, nid, op):
    """The node itself if it has this op, else None."""
    n = graph.node(nid)
    return nid if n["op"] == op else None
