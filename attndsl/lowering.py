"""Lowering: IR graph -> torch.fx.GraphModule with real submodules and parameters.

Input: an `ir.Graph` (after passes). Output: an `fx.GraphModule` whose
forward takes the spec's inputs in order and returns its outputs (a tuple
when there are several). The fx graph is built node by node, never traced.
Entry point: `lower`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import sympy
import torch
import torch.nn.functional as F
from torch import fx, nn

from . import runtime, syntax as S
from .errors import LoweringError
from .ir import Graph
from .layers import apply_ties, make_layer
from .ops import OPS
from .shapes import Pack, assuming, fmt_dim, is_int, is_symbolic, split_pack, sym
from .spec import eval_static

INFIX = {
    operator.ne: "!=",
    operator.add: "+",
    operator.sub: "-",
    operator.mul: "*",
    operator.truediv: "/",
    operator.pow: "**",
    operator.matmul: "@",
    operator.floordiv: "//",
    operator.mod: "%",
}


def source_name(fn) -> str | None:
    """How generated code spells a torch callable: `torch.<name>` or `F.<name>`, where that name is this object."""
    name = getattr(fn, "__name__", None)
    for prefix, home in (("torch", torch), ("F", F)):
        if name and getattr(home, name, None) is fn:
            return f"{prefix}.{name}"
    return None


# constant tensors: op -> (runtime function, its arguments' attribute names); codegen writes the same call
BUFFERS = {name: d.buffer for name, d in OPS.items() if d.buffer}


class _Builder:
    def __init__(self, graph: Graph):
        self.ir, self.fx, self.root = graph, fx.Graph(), nn.Module()
        self.buffers = {}  # buffer name -> (runtime fn name, args)
        self.current = None  # IR node being lowered
        self.values = {}  # run-time size expression -> its fx value, computed once

    def node(self, kind, target, args=(), kwargs=None, name=None):
        n = self.current
        label = name or (n["name"] if n and n["name"] else (n["op"] if n else None))
        out = self.fx.create_node(kind, target, tuple(args), kwargs or {}, name=label)
        out.meta["span"] = n["span"] if n else None  # codegen quotes the spec line
        return out

    def call(self, fn, args=(), kwargs=None, name=None):
        return self.node("call_function", fn, args, kwargs, name)

    def method(self, meth, args=(), kwargs=None):
        return self.node("call_method", meth, args, kwargs)

    # what the ops' lowerings use beyond call and method
    is_node = staticmethod(lambda v: isinstance(v, fx.Node))

    def in_shapes(self, n: dict) -> list:
        """The IR shapes of node n's inputs."""
        return [self.ir.node(i)["shape"] for i in n["inputs"]]

    def dims(self, x, shape, dims):
        """Axis argument for a reduction; a variadic run becomes a runtime axis tuple."""
        if "S" not in dims:
            return tuple(dims)
        pre, _, suf = split_pack(shape)
        fixed = tuple(d for d in dims if d != "S")
        return self.call(runtime.axes, (x, fixed, len(pre), len(suf)), name="dims")

    def sizes(self, sizes):
        """Output sizes for the graph: ints and fx values as they are, a run-time size (`H - 1`) computed."""
        return tuple(d if isinstance(d, int) or self.is_node(d) else self.value(d) for d in sizes)

    def value(self, e):
        """The fx value of a run-time size expression: input sizes (`x.size(2)`) and integer arithmetic.

        floor(a / b) is `a // b`, ceil(a / b) is `-(-a // b)`, a quotient known to be whole (4 | H) is `//` too,
        any other quotient `/` (a float)."""
        e = sympy.sympify(e)
        if e.is_Integer:
            return int(e)
        if e.is_Number:
            return float(e)
        if e in self.values:
            return self.values[e]
        if e.is_Symbol:
            out = self.read_size(e)
        elif isinstance(e, (sympy.floor, sympy.ceiling)):
            num, den = sympy.fraction(sympy.together(e.args[0]))
            if isinstance(e, sympy.floor):
                out = self._op(operator.floordiv, self.value(num), self.value(den))
            else:
                out = self.call(
                    operator.neg, (self._op(operator.floordiv, self.value(-num), self.value(den)),), name="size"
                )
        elif isinstance(e, sympy.Mod):
            out = self._op(operator.mod, self.value(e.args[0]), self.value(e.args[1]))
        elif e.is_Add:
            terms = sorted(e.as_ordered_terms(), key=lambda t: t.could_extract_minus_sign())
            out = self.value(terms[0])
            for t in terms[1:]:
                neg = t.could_extract_minus_sign()
                out = self._op(operator.sub if neg else operator.add, out, self.value(-t if neg else t))
        elif e.is_Mul or e.is_Pow and e.exp.is_negative:
            num, den = sympy.fraction(e)
            if den != 1:
                whole = is_int(e)
                out = self._op(operator.floordiv if whole else operator.truediv, self.value(num), self.value(den))
            elif e.could_extract_minus_sign():
                out = self.call(operator.neg, (self.value(-e),), name="size")
            else:
                coeff, rest = e.as_coeff_mul()
                out = self.value(rest[0]) if coeff == 1 else self.value(coeff)
                for f in rest[1 if coeff == 1 else 0 :]:
                    out = self._op(operator.mul, out, self.value(f))
        elif e.is_Pow:
            out = self._op(operator.pow, self.value(e.base), self.value(e.exp))
        else:
            raise LoweringError(
                f"cannot compute the run-time size `{e}`",
                self.current["span"] if self.current else None,
                "run-time sizes take + - * / // % ** and floor/ceil",
            )
        self.values[e] = out
        return out

    def _op(self, fn, a, b):
        if not (self.is_node(a) or self.is_node(b)):
            return fn(a, b)
        return self.call(fn, (a, b), name="size")

    def read_size(self, d):
        """A symbolic size read off the first input that has it as an axis: `x.size(2)`."""
        for name, nid in self.ir.inputs:
            shape = self.ir.node(nid)["shape"]
            pre, pack, suf = split_pack(shape)
            axes = [i for i, s in enumerate(pre) if s == d] + [i - len(suf) for i, s in enumerate(suf) if s == d]
            if axes:
                x = next(n for n in self.fx.nodes if n.op == "placeholder" and n.target == name)
                return self.node("call_method", "size", (x, axes[0]), name=str(d))
        raise LoweringError(
            f"size `{d}` is no axis of an input: name a symbol of the inputs' shapes",
            self.current["span"] if self.current else None,
        )

    def buffer(self, n: dict):
        """Register the buffer of constant op n (its `buffer=` entry) and read it."""
        name = n["name"] or n["op"]
        base, k = name, 1
        while hasattr(self.root, name):
            name, k = f"{base}_{k}", k + 1
        fn, argnames = OPS[n["op"]].buffer
        self.root.register_buffer(name, fn(*[n["attrs"][k] for k in argnames]))
        self.buffers[name] = n
        return self.fx.get_attr(name)


def lower_node(b: _Builder, n: dict, ins: list):
    """The fx value of IR node n: its op's lowering (registered beside its shape rule in attndsl/ops)."""
    op = n["op"]
    if op == "const":
        return n["attrs"]["value"]
    if op == "symsize":  # a run-time size used as a number: read off the inputs
        return b.value(n["attrs"]["expr"])
    if op == "getitem":  # one result of a multi-output op (split, chunk, split_like)
        return b.call(operator.getitem, (ins[0], n["attrs"]["index"]))
    d = OPS.get(op)
    if d is None or d.lower is None:
        raise LoweringError(f"no lowering for op `{op}`", n["span"])
    if d.runtime and _has_symbolic(n["attrs"]):  # run-time sizes in the attributes: their fx values
        n = {**n, "attrs": _run_time(b, n["attrs"])}
    return d.lower(b, n, ins)


def _has_symbolic(v) -> bool:
    if isinstance(v, dict):
        return any(_has_symbolic(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return any(_has_symbolic(x) for x in v)
    return is_symbolic(v)


def _run_time(b, v):
    if isinstance(v, dict):
        return {k: _run_time(b, x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return type(v)(_run_time(b, x) for x in v)
    return b.value(v) if is_symbolic(v) else v


def set_submodule(root: nn.Module, path: str, value) -> None:
    """root.<path> = value, creating ModuleDict/ParameterDict containers for `name.i` paths."""
    *parents, leaf = path.split(".")
    cur = root
    for p in parents:
        if not hasattr(cur, p):
            cur.add_module(p, nn.ParameterDict() if isinstance(value, nn.Parameter) else nn.ModuleDict())
        cur = getattr(cur, p)
    if isinstance(value, nn.Parameter):
        if isinstance(cur, nn.ParameterDict):
            cur[leaf] = value
        else:
            cur.register_parameter(leaf, value)
    elif isinstance(cur, nn.ModuleDict):
        cur[leaf] = value
    else:
        cur.add_module(leaf, value)


def layer_ranks(graph: Graph) -> dict:
    """Input rank of each layer's applications, where fixed and the same for all of them."""
    ranks: dict = {}
    for nid in graph.order():
        n = graph.node(nid)
        if n["op"] == "layer":
            shape = graph.node(n["inputs"][0])["shape"]
            r = None if split_pack(shape)[1] is not None else len(shape)
            prev = ranks.get(n["attrs"]["layer"], r)
            ranks[n["attrs"]["layer"]] = r if prev == r else None
    return ranks


def _keep_declared_modules(dst: nn.Module, src: nn.Module) -> None:
    """fx copies a layer that the graph reads only through its tensors (`q.weight`, after
    fuse_projections) as a bare nn.Module, placed where it is first read: put the declared module
    back, and every container's children in declaration order (the state dict's key order)."""
    for name, sub in list(dst._modules.items()):
        real = src._modules.get(name)
        if real is None or sub is real:
            continue
        if type(sub) is nn.Module and not isinstance(real, (nn.ModuleDict, nn.ParameterDict)) and not real._modules:
            dst._modules[name] = real
        else:
            _keep_declared_modules(sub, real)
    rank = {k: i for i, k in enumerate(src._modules)}
    dst._modules = dict(sorted(dst._modules.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def lower(graph: Graph, class_name: str = "AttentionBlock", check_inputs: bool = True) -> fx.GraphModule:
    """The fx module of an IR graph; `check_inputs` makes forward check its inputs' shapes first."""
    with assuming(graph.meta.get("divisible", [])):
        return _lower(graph, class_name, check_inputs)


def _lower(graph: Graph, class_name: str, check_inputs: bool) -> fx.GraphModule:
    b = _Builder(graph)
    ranks = layer_ranks(graph)
    for name, decl in graph.layers.items():
        set_submodule(b.root, name, make_layer(decl.kind, decl.args, ranks.get(name)))
    apply_ties(b.root, graph.layers)
    env = {}
    for name, nid in graph.inputs:  # placeholders in the spec's order, then the input check
        env[nid] = b.fx.placeholder(name)
    if check_inputs:
        b.call(
            runtime.check_input_shapes,
            (input_layout(graph), *[env[nid] for _, nid in graph.inputs]),
            name="check_inputs",
        )
    for nid in graph.order():
        n = graph.node(nid)
        b.current = n
        if n["op"] == "input":
            continue
        elif n["op"] == "param":
            attr = n["attrs"].get("attr")  # a layer's own tensor (fuse_projections reads `q.weight`)
            env[nid] = b.fx.get_attr(n["attrs"]["layer"] + (f".{attr}" if attr else ""))
        elif n["op"] == "layer":
            env[nid] = b.node(
                "call_module",
                n["attrs"]["layer"],
                (env[n["inputs"][0]],),
                name=n["name"] or n["attrs"]["layer"].replace(".", "_"),
            )
        else:
            env[nid] = lower_node(b, n, [env[i] for i in n["inputs"]])
    outs = [env[o] for _, o in graph.outputs]
    b.fx.output(outs[0] if len(outs) == 1 else tuple(outs))
    b.fx.lint()
    gm = fx.GraphModule(b.root, b.fx, class_name=class_name)
    _keep_declared_modules(gm, b.root)
    from .passes.inplace import mark_fresh_relus

    gm.meta["relu_fresh"] = mark_fresh_relus(gm)
    gm.meta["ir"] = graph
    gm.meta["buffers"] = b.buffers
    return gm


# --- run-time input checks ------------------------------------------------------------------

SPATIAL_AXES = (1, 3)  # the axes a `*S` run may stand for: 1-D, 2-D and 3-D inputs
fx.node.has_side_effect(runtime.check_input_shapes)  # its node has no users: dead-code passes must keep it


@dataclass
class InputDim:
    """One declared axis of an input, as the check sees it."""

    value: object  # int: fixed by the parameters; str: a symbol ("B"), a run ("*S"), or a shown expression;
    # (k, "n"): a multiple of k, n the quotient (a symbol)
    text: object  # the spec's text for it (an int, a name or an expression)
    params: tuple  # the parameters behind a fixed size, for the message


def input_dims(graph: Graph) -> list:
    """[(input name, [InputDim, ...])] from the input nodes' shapes and the spec's declared dims."""
    params = graph.meta.get("params", {})
    declared = graph.meta.get("input_dims", {})
    out = []
    for name, nid in graph.inputs:
        shape = graph.node(nid)["shape"]
        texts = declared.get(name) or [None] * len(shape)
        dims = []
        for d, text in zip(shape, texts):
            if isinstance(d, Pack):
                dims.append(InputDim(f"*{d.name}", text, ()))
            elif isinstance(d, int):
                dims.append(InputDim(d, text, _deps(text, params)))
            elif _multiple(d, text, params) is not None:  # k * n: a multiple of k, the quotient n a symbol
                dims.append(InputDim(_multiple(d, text, params), text, _deps(text, params)))
            else:
                dims.append(InputDim(fmt_dim(d), text, ()))
        out.append((name, dims))
    return out


def _multiple(d, text, params: dict):
    """(k, "n") for a size declared `k * n` (a parameter expression times a symbol n), else None."""
    from .frontend import multiple_of

    if not isinstance(text, str) or text.isidentifier():
        return None
    m = multiple_of(S.parse_expression(S.Source("<input>", text)), params)
    if m is None:
        return None
    k = sympy.simplify(d / sym(m[1]))
    return (int(k), m[1]) if k.is_Integer else None


def _deps(text, params: dict) -> tuple:
    """Parameters a declared dim depends on, in order of appearance; of a conditional, the branch taken."""
    if not isinstance(text, str):
        return ()
    if text.isidentifier():
        return (text,) if text in params else ()
    found: list = []

    def walk(e):
        if isinstance(e, S.IfExp):
            walk(e.then if eval_static(e.cond, params.__getitem__, params) else e.orelse)
        elif isinstance(e, S.Var):
            if e.name in params and e.name not in found:
                found.append(e.name)
        elif isinstance(e, S.Node):
            for v in vars(e).values():
                for item in v if isinstance(v, list) else [v]:
                    walk(item)

    walk(S.parse_expression(S.Source("<input>", text)))
    return tuple(found)


def input_layout(graph: Graph) -> dict:
    """The argument `runtime.check_input_shapes` takes: the spec's name and each input's declared axes."""
    params = graph.meta.get("params", {})
    entries = []
    for name, dims in input_dims(graph):
        pack = any(isinstance(d.value, str) and d.value.startswith("*") for d in dims)
        entries.append(
            (
                name,
                tuple(d.value for d in dims),
                tuple(tuple((k, params[k]) for k in d.params) for d in dims),
                SPATIAL_AXES if pack else None,
            )
        )
    return {"spec": graph.meta.get("spec", "block"), "inputs": tuple(entries)}
