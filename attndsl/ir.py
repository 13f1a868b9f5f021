"""The IR: one NetworkX multigraph per compiled spec.

Every node has one schema (`op`, `inputs`, `attrs`, `shape`, `dtype`, `span`,
`name`); `inputs` is the ordered operand list and the multigraph's edges mirror
it (edge key = operand slot), so NetworkX algorithms see the real dataflow.
All graph surgery goes through the methods of `Graph`; passes never touch the
NetworkX object directly. Entry points: `Graph`, `Graph.dump`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .errors import IRError, Span
from .shapes import fmt_shape


@dataclass
class LayerDecl:
    """A parameterised layer declared inline (`fc1 = linear(64, 4)`): becomes a submodule."""

    kind: str  # linear, conv2d, batchnorm, param, ...
    args: dict  # constructor arguments, static values only
    span: Span | None = None
    exprs: dict = field(default_factory=dict)  # argument -> Python source over parameters


@dataclass
class Graph:
    g: nx.MultiDiGraph = field(default_factory=nx.MultiDiGraph)
    inputs: list = field(default_factory=list)  # [(name, node id)]
    outputs: list = field(default_factory=list)  # [(name, node id)]
    layers: dict = field(default_factory=dict)  # submodule name -> LayerDecl, in declaration order
    meta: dict = field(default_factory=dict)  # spec name, params...
    _ids: Any = field(default_factory=lambda: itertools.count())

    # --- construction -----------------------------------------------------------
    def add(self, op: str, inputs=(), attrs=None, shape=None, dtype="float", span=None, name=None) -> int:
        nid = next(self._ids)
        self.g.add_node(
            nid, op=op, inputs=list(inputs), attrs=dict(attrs or {}), shape=shape, dtype=dtype, span=span, name=name
        )
        for slot, src in enumerate(inputs):
            self.g.add_edge(src, nid, key=slot)
        return nid

    def node(self, nid: int) -> dict:
        return self.g.nodes[nid]

    def __contains__(self, nid) -> bool:
        return nid in self.g

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    # --- queries -----------------------------------------------------------------
    def order(self) -> list:
        """Node ids in a deterministic topological order."""
        return list(nx.lexicographical_topological_sort(self.g))

    def users(self, nid: int) -> list:
        return sorted(set(self.g.successors(nid)))

    def n_uses(self, nid: int) -> int:
        """Operand slots plus graph outputs that read this node."""
        return self.g.out_degree(nid) + sum(1 for _, o in self.outputs if o == nid)

    def output_ids(self) -> set:
        return {o for _, o in self.outputs}

    # --- surgery -----------------------------------------------------------------
    def set_inputs(self, nid: int, inputs) -> None:
        for src in set(self.g.predecessors(nid)):
            while self.g.has_edge(src, nid):
                self.g.remove_edge(src, nid)
        self.g.nodes[nid]["inputs"] = list(inputs)
        for slot, src in enumerate(inputs):
            self.g.add_edge(src, nid, key=slot)

    def replace_uses(self, old: int, new: int) -> None:
        """Every reader of `old` (and every graph output) reads `new` instead."""
        for user in self.users(old):
            self.set_inputs(user, [new if i == old else i for i in self.node(user)["inputs"]])
        self.outputs = [(n, new if o == old else o) for n, o in self.outputs]

    def erase_unused(self, nid: int) -> int:
        """Remove nid if nothing reads it, then its operands that become unused; returns the count."""
        if nid not in self.g or self.n_uses(nid) or self.node(nid)["op"] == "input":
            return 0
        ins = set(self.node(nid)["inputs"])
        self.g.remove_node(nid)
        return 1 + sum(self.erase_unused(i) for i in ins)

    def replace(self, old: int, new: int) -> None:
        """replace_uses, then erase what the old node alone kept alive."""
        self.replace_uses(old, new)
        self.erase_unused(old)

    def remove(self, nid: int) -> None:
        if self.n_uses(nid):
            raise IRError(f"cannot remove node {nid}: it is still used")
        self.g.remove_node(nid)

    # --- printing ----------------------------------------------------------------
    def dump(self) -> str:
        """Text form, one node a line, stable across runs (golden files compare it)."""
        order = self.order()
        num = {nid: i for i, nid in enumerate(order)}
        lines = []
        for name, decl in self.layers.items():
            args = {k: v for k, v in decl.args.items() if v is not None}
            lines.append(f"layer {name} = {decl.kind}({_fmt_attrs(args)})")
        for nid in order:
            n = self.node(nid)
            args = ", ".join(f"%{num[i]}" for i in n["inputs"])
            attrs = _fmt_attrs(n["attrs"])
            label = f" {n['name']}" if n["name"] else ""
            body = f"{n['op']}({args})" + (f" {{{attrs}}}" if attrs else "")
            ty = fmt_shape(n["shape"]) if n["dtype"] == "float" else n["dtype"]
            lines.append(f"%{num[nid]}{label} = {body} : {ty}")
        outs = ", ".join(f"{name}=%{num[o]}" for name, o in self.outputs)
        lines.append(f"return {outs}")
        return "\n".join(lines) + "\n"


def _fmt_attrs(attrs: dict) -> str:
    return ", ".join(f"{k}={_fmt_val(v)}" for k, v in attrs.items())


def _fmt_val(v) -> str:
    if isinstance(v, float):
        return repr(round(v, 6))
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_fmt_val(x) for x in v)
        return f"({inner})" if isinstance(v, tuple) else f"[{inner}]"
    if isinstance(v, dict):
        return "{" + _fmt_attrs(v) + "}"
    return str(v)
