"""The compiler, one stage a line: spec -> IR -> passes -> torch.fx (-> torch.compile).

Entry points: `compile_spec` (every stage's result, for the CLI and tests) and
`build` (the module a user wants).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .frontend import build_graph
from .ir import Graph
from .passes import DEFAULT_PIPELINE, get_pass
from .registry import find_spec
from .spec import Spec, load_spec
from .verify import verify


@dataclass
class Compiled:
    spec: Spec
    params: dict
    graph: Graph
    nodes_before: int
    stats: dict = field(default_factory=dict)     # pass name -> counters
    dumps: dict = field(default_factory=dict)     # stage -> IR text, when asked for

    @property
    def class_name(self) -> str:
        return "".join(p[:1].upper() + p[1:] for p in self.spec.name.split("_"))


@lru_cache(maxsize=128)
def _load(path: str, mtime: float) -> Spec:
    return load_spec(path)


def load(spec: str | os.PathLike | Spec) -> Spec:
    if isinstance(spec, Spec):
        return spec
    path = find_spec(spec)
    return _load(str(path), Path(path).stat().st_mtime)


def compile_spec(spec, params: dict | None = None, passes=None, *, check: bool = False,
                 dump: tuple = ()) -> Compiled:
    """Run the front half of the compiler; `dump` names stages ("frontend", a pass, "all") to keep IR text of."""
    spec = load(spec)
    values = spec.resolve(**(params or {}))
    graph = build_graph(spec, values)                       # parse, evaluate, infer shapes
    out = Compiled(spec, values, graph, len(graph))
    keep = set(dump)
    if keep & {"frontend", "all"}:
        out.dumps["frontend"] = graph.dump()
    if check:
        verify(graph)
    for name in (DEFAULT_PIPELINE if passes is None else passes):
        out.stats[name] = get_pass(name).apply(graph)       # optimise
        if check:
            verify(graph)
        if keep & {name, "all"}:
            out.dumps[name] = graph.dump()
    return out


def build(spec, *, compile: bool = False, passes=None, check_inputs: bool = True, **params):
    """The spec as a torch module: an fx.GraphModule, or that module under torch.compile(fullgraph=True).

    Its forward first checks the inputs' shapes against the spec (`runtime.InputShapeError`, a ValueError,
    naming the spec, the input, the expected and the actual shape); `check_inputs=False` leaves that out.
    """
    from .lowering import lower
    c = compile_spec(spec, params, passes)
    gm = lower(c.graph, c.class_name, check_inputs=check_inputs)
    gm.meta["compiled"] = c
    if compile:
        import torch
        return torch.compile(gm, fullgraph=True)
    return gm
