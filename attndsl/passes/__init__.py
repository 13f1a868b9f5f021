"""Optimisation passes over the IR, registered by name.

A pass is a small object with a `name`, a one-line `doc` and
`apply(graph) -> dict` (counters of what it changed); passes must leave the IR
valid (`verify`). Entry points: `PASSES`, `DEFAULT_PIPELINE`, `get_pass`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import AttnDSLError, did_you_mean


@dataclass(frozen=True)
class Pass:
    name: str
    doc: str
    fn: Callable

    def apply(self, graph) -> dict:
        return self.fn(graph) or {}


PASSES: dict[str, Pass] = {}


def register(name: str, doc: str):
    def deco(fn):
        PASSES[name] = Pass(name, doc, fn)
        return fn

    return deco


def get_pass(name: str) -> Pass:
    if name not in PASSES:
        raise AttnDSLError(f"unknown pass `{name}`", hint=did_you_mean(name, PASSES) or f"passes: {', '.join(PASSES)}")
    return PASSES[name]


# import for registration; the order here is the default pipeline's
# (fold_bn, reassociate and fuse_projections are opt-in: not in the default pipeline)
from . import constfold, cse, dce, fold_bn, fuse_attention, fuse_gate, fuse_projections, reassociate  # noqa: E402,F401

DEFAULT_PIPELINE = ["constfold", "cse", "fuse_attention", "fuse_gate", "dce"]
