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
    stats: dict = field(default_factory=dict)  # pass name -> counters
    dumps: dict = field(default_factory=dict)  # stage -> IR text, when asked for

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


def pass_names(passes) -> list:
    """The passes to run: None is the default pipeline; a comma-separated string ("cse,dce", "none" or ""
    for none) or a list/tuple of names is taken as given."""
    from .errors import AttnDSLError

    if passes is None:
        return list(DEFAULT_PIPELINE)
    if isinstance(passes, str):
        names = [p.strip() for p in passes.split(",")]
        return [] if names in (["none"], [""]) else [p for p in names if p]
    if not isinstance(passes, (list, tuple)) or not all(isinstance(p, str) for p in passes):
        raise AttnDSLError(
            f"passes must be a comma-separated string or a list of pass names, got {passes!r}",
            hint='e.g. passes="cse,dce" or passes=["cse", "dce"]',
        )
    return list(passes)


def compile_spec(spec, params: dict | None = None, passes=None, *, check: bool = False, dump: tuple = ()) -> Compiled:
    """Run the front half of the compiler; `dump` names stages ("frontend", a pass, "all") to keep IR text of.

    `passes`: see `pass_names`."""
    spec = load(spec)
    values = spec.resolve(**(params or {}))
    graph = build_graph(spec, values)  # parse, evaluate, infer shapes
    out = Compiled(spec, values, graph, len(graph))
    keep = set(dump)
    if keep & {"frontend", "all"}:
        out.dumps["frontend"] = graph.dump()
    if check:
        verify(graph)
    for name in pass_names(passes):
        out.stats[name] = get_pass(name).apply(graph)  # optimise
        if check:
            verify(graph)
        if keep & {name, "all"}:
            out.dumps[name] = graph.dump()
    return out


def build(
    spec,
    *,
    compile: bool = False,
    passes=None,
    check_inputs: bool = True,
    inference: bool = False,
    state_dict=None,
    inplace: bool = False,
    **params,
):
    """The spec as a torch module: an fx.GraphModule, or that module under torch.compile(fullgraph=True).

    Its forward first checks the inputs' shapes against the spec (`runtime.InputShapeError`, a ValueError,
    naming the spec, the input, the expected and the actual shape); `check_inputs=False` leaves that out.
    `inference=True` adds the `fold_bn` pass and returns the module in eval mode; `state_dict`, a state dict
    of the unfolded module (e.g. trained), is then folded and loaded (see `fold_batchnorm`).
    `inplace=True` writes gate outputs (y = x * s) into the input x where nothing reads x afterwards and no
    gradient is wanted: like an in-place ReLU it destroys the input (`passes/inplace.py`; counters in
    `meta["compiled"].stats["inplace"]`).
    """
    from .lowering import lower

    names = pass_names(passes)
    if inference and "fold_bn" not in names:
        names.append("fold_bn")
    c = compile_spec(spec, params, names)
    gm = lower(c.graph, c.class_name, check_inputs=check_inputs)
    gm.meta["compiled"] = c
    if inplace:
        from .passes.inplace import mark_inplace

        c.stats["inplace"] = mark_inplace(gm)
    if inference:
        gm.eval()
    if state_dict is not None:
        from .passes.fold_bn import fold_state_dict

        gm.load_state_dict(fold_state_dict(c.graph, state_dict) if inference else state_dict)
    if compile:
        import torch

        return torch.compile(gm, fullgraph=True)
    return gm


def fold_batchnorm(module, spec=None, **params):
    """The folded (inference) module of an unfolded built module, with its current weights and BN statistics.

    Train the module `build` gives, then `fold_batchnorm(trained)`: same eval output, no batch norms after a
    conv/linear. The spec and parameters come from the module (`meta["compiled"]`), or pass them.
    """
    from .errors import AttnDSLError

    module = getattr(module, "_orig_mod", module)  # under torch.compile
    c = getattr(module, "meta", {}).get("compiled")
    if spec is None and c is None:
        raise AttnDSLError(
            "fold_batchnorm: this module does not say which spec it was built from",
            hint='pass it: fold_batchnorm(module, "cbam", channels=...)',
        )
    if spec is None:
        spec, params = c.spec, dict(c.params)
    passes = list(c.stats) if c is not None else None
    check = any(n.name == "check_inputs" for n in module.graph.nodes) if hasattr(module, "graph") else True
    folded = build(spec, passes=passes, check_inputs=check, inference=True, **params)
    p = next(module.parameters(), None)
    if p is not None:  # the trained module's dtype and device, before its values are copied in
        folded.to(device=p.device, dtype=p.dtype)
    from .passes.fold_bn import fold_state_dict

    folded.load_state_dict(fold_state_dict(folded.meta["compiled"].graph, module.state_dict()))
    return folded
