"""Attention maps: a spec names them (`maps: [s_c, s_s]`), `capture` records them.

    with attndsl.capture(model) as maps:
        model(x)
    maps["layer1.0.cbam"]["s_s"]          # [B, 1, H, W]

A built block runs the graph the passes left, where a map may have been fused away
(non_local's softmax into one attention kernel, senet's sigmoid into a gate). Inside
`capture`, each attndsl block of the model runs a second graph compiled from the same
spec and parameters with its maps as extra outputs, so no pass can fuse them; it shares
the block's parameters, buffers and train/eval flag. Outside `capture` nothing is
patched or hooked: a block runs exactly the graph it was built with. Entry points:
`capture`, `map_names`.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager

import yaml
from torch import fx, nn

from .errors import AttnDSLError, SpecError

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # block -> (capture module, map names)


def map_names(spec) -> list:
    """The names a spec's `maps:` lists (checked to be a list of names), [] when it lists none."""
    from .pipeline import load

    s = load(spec)
    data = yaml.safe_load("\n".join(s.lines)) or {}
    names = data.get("maps") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n.isidentifier() for n in names):
        odd = [n for n in names if isinstance(n, bool)] if isinstance(names, list) else []
        raise SpecError(
            "`maps` must list names of values of g or f, e.g. `maps: [s]`",
            s.span("maps"),
            "YAML reads off/on/yes/no as booleans: quote such a name" if odd else None,
        )
    if len(set(names)) != len(names):
        raise SpecError("`maps` lists a name twice", s.span("maps"))
    return names


def compile_with_maps(spec, params: dict, passes=None):
    """The spec's IR with every map it names (and the parameters make) as an extra output, after passes.

    Returns (graph, the map names present). A name the parameters leave unassigned (a branch
    switched off) is skipped; a name that is no tensor value of g or f is an error.
    """
    from .frontend import build_graph
    from .passes import DEFAULT_PIPELINE, get_pass
    from .pipeline import load

    s = load(spec)
    values = s.resolve(**params)
    graph = build_graph(s, values)
    present = []
    for i, name in enumerate(map_names(s)):
        nid = graph.meta["values"].get(name)
        if nid is None:
            if _assigned(s, name):
                continue  # assigned on a branch these parameters skip
            raise SpecError(
                f"map `{name}` is not a value of g or f",
                s.span("maps", i) or s.span("maps"),
                "name a tensor assigned at the top level of g or f",
            )
        graph.outputs.append((f"map:{name}", nid))
        present.append(name)
    for p in DEFAULT_PIPELINE if passes is None else passes:
        get_pass(p).apply(graph)
    return graph, present


def _assigned(spec, name) -> bool:
    from . import syntax as S
    from .syntax import parse_program

    def walk(node):
        if isinstance(node, S.Target) and node.name == name:
            return True
        for v in vars(node).values() if hasattr(node, "__dict__") else ():
            items = v if isinstance(v, list) else [v]
            if any(isinstance(i, S.Node) and walk(i) for i in items):
                return True
        return False

    return any(src is not None and any(walk(st) for st in parse_program(src)) for src in (spec.g, spec.f))


def _capture_module(block: fx.GraphModule):
    """A GraphModule over the block's own submodules and parameters whose extra outputs are the maps."""
    if block in _CACHE:
        return _CACHE[block]
    from .lowering import lower

    c = block.meta["compiled"]
    graph, names = compile_with_maps(c.spec, c.params, list(c.stats))
    if not names:
        _CACHE[block] = (None, [])
        return _CACHE[block]
    fresh = lower(graph, c.class_name)
    for node in fresh.graph.nodes:
        if node.op in ("get_attr", "call_module") and node.target != "training":
            try:
                block.get_submodule(node.target) if node.op == "call_module" else _attr(block, node.target)
            except AttributeError:
                raise AttnDSLError(
                    f"the maps of `{c.spec.name}` need `{node.target}`, which the built block lacks"
                ) from None
    cap = fx.GraphModule(block, fresh.graph, class_name=c.class_name + "Maps")
    _CACHE[block] = (cap, names)
    return _CACHE[block]


def _attr(mod, path):
    for p in path.split("."):
        mod = getattr(mod, p)
    return mod


def _blocks(model: nn.Module):
    """(path, block) for every attndsl-built module in model; a torch.compile wrapper's name is left out."""
    for path, m in model.named_modules():
        if isinstance(m, fx.GraphModule) and "compiled" in m.meta:
            yield ".".join(p for p in path.split(".") if p != "_orig_mod"), m


@contextmanager
def capture(model: nn.Module, detach: bool = True):
    """Record every attndsl block's maps while the context is open: {module path: {map name: tensor}}.

    The dict fills as the model runs; a block called several times keeps its last call's maps.
    `detach=False` keeps the maps in the autograd graph (e.g. to regularise them). The model's
    outputs are the same function; fusions that would consume a map are not made, so they may
    differ from an uncaptured run by float rounding.
    """
    maps: dict = {}
    patched = []
    try:
        for path, block in _blocks(model):
            cap, names = _capture_module(block)
            if cap is None:
                continue
            block.forward = _recorder(block, cap, names, path, maps, detach)
            patched.append(block)
        yield maps
    finally:
        for block in patched:
            del block.forward


def _recorder(block, cap, names, path, maps, detach):
    n_out = len(block.meta["compiled"].graph.outputs)
    # the block's own tensors (not its submodules'): `block.to(...)` replaces buffers by new tensors
    own = [n.target for n in cap.graph.nodes if n.op == "get_attr" and "." not in n.target and n.target != "training"]

    def forward(*args, **kwargs):
        cap.training = block.training  # train/eval as the block: dropout, batch norm, EMA updates
        for name in own:
            if getattr(cap, name) is not getattr(block, name):
                setattr(cap, name, getattr(block, name))
        out = cap(*args, **kwargs)
        got = out[n_out:]
        maps[path] = {k: (v.detach() if detach else v) for k, v in zip(names, got)}
        return out[0] if n_out == 1 else tuple(out[:n_out])

    return forward
