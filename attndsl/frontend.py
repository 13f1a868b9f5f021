"""Frontend: a spec and its parameter values -> IR graph with inferred shapes.

Input: a `Spec` and resolved parameter values. Output: an `ir.Graph` whose
nodes carry shapes (symbolic where the inputs are), layers declared inline
as named submodules, and source spans for every node. Evaluation is symbolic:
loops unroll, user functions inline, static arithmetic is computed in Python
(and recorded, so that a static used as a tensor operand becomes foldable IR).
Entry point: `build_graph`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import sympy

from . import syntax as S
from .errors import NameError_, ShapeError, SpecError, Span, did_you_mean
from .ir import Graph, LayerDecl
from .ops import LAYERS, OPS, OpError, T, layer_apply_shape, static_builtins
from .shapes import Pack, fmt_shape, norm, sym
from .spec import Spec, arith, eval_static
from .syntax import parse_expression, parse_program, Source

BUFFER_OPS = ("dct_filters", "eye", "triu_indices", "window_index", "random_bases")
CONSTANTS = {"true": True, "false": False, "spatial": "spatial", "none": None, "pi": math.pi}
RESERVED = ("true", "false", "spatial", "none")      # constants a program cannot rebind (pi it may: π_k)
STATIC_ONLY = static_builtins()


# --- values of the evaluator -----------------------------------------------------------

@dataclass
class Tensor:
    nid: int


@dataclass
class Static:
    """A value known at compile time.

    `prov` records how it was computed (so a static used as a tensor operand
    becomes foldable IR), `src` is the same computation as Python source over
    the parameter names (so generated code stays parametric), `deps` the
    parameters it depends on.
    """
    value: object
    prov: tuple | None = None      # (op, Static, Static), ("neg", Static), ("param", name) or None
    src: str | None = None
    deps: frozenset = frozenset()

    @property
    def source(self) -> str:
        return self.src if self.src is not None else repr(self.value)


_PYOPS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "pow": "**",
          "and": "and", "or": "or", "==": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_LOGIC = ("and", "or", "==", "!=", "<", ">", "<=", ">=")
_PYFUNCS = {"floor": "math.floor", "ceil": "math.ceil", "log": "math.log", "log2": "math.log2",
            "sqrt": "math.sqrt"}


def _static_call(name, vals, value):
    srcs = [v.source for v in vals]
    deps = frozenset().union(*[v.deps for v in vals]) if vals else frozenset()
    if name == "odd":
        src = f"({srcs[0]} | 1)"      # t if t is odd else t + 1, for t >= 0
    else:
        src = f"{_PYFUNCS.get(name, name)}({', '.join(srcs)})"
    return Static(value, None, src if deps else None, deps)


@dataclass
class NewLayer:
    kind: str
    args: dict
    span: Span
    exprs: dict          # argument -> Python source over parameters, where it depends on them


@dataclass
class LayerRef:
    name: str


@dataclass
class Many:
    """A list of values: `split` results, `u[i]` bindings, list literals with tensors."""
    items: dict       # index -> value
    base: str = ""


@dataclass
class Func:
    node: S.Def


class _Return(Exception):
    def __init__(self, values):
        self.values = values


class Frontend:
    def __init__(self, spec: Spec, params: dict):
        self.spec, self.params = spec, params
        self.graph = Graph(meta={"spec": spec.name, "params": dict(params)})
        self.scopes: list[dict] = [{}]
        self.fixed: set = set()     # parameters that generated code cannot vary
        self.axis_names = {d.lstrip("*") for dims in spec.inputs.values() for d in dims
                           if isinstance(d, str) and d.lstrip("*").isidentifier() and d not in params}

    # --- names -------------------------------------------------------------------------
    def lookup(self, name: str, span: Span):
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in self.params:
            return Static(self.params[name], ("param", name), name, frozenset([name]))
        if name in CONSTANTS:
            return Static(CONSTANTS[name])
        if name in self.axis_names:          # a symbolic size names its axis: softmax(a, dim=T)
            return Static(name)
        known = [n for s in self.scopes for n in s] + list(self.params) + list(CONSTANTS)
        raise NameError_(f"undefined name `{name}`", span,
                         did_you_mean(name, known) or "assign it first, or declare it under `params`/`inputs`")

    def bind(self, name: str, value):
        self.scopes[-1][name] = value

    # --- graph helpers -----------------------------------------------------------------------
    def shape(self, v: Tensor):
        return self.graph.node(v.nid)["shape"]

    def materialize(self, v: Static, span) -> int:
        """A static number as IR: its whole computation, so constant folding can see it."""
        if isinstance(v.prov, tuple) and v.prov[0] not in ("param",) and len(v.prov) == 3:
            op, a, b = v.prov
            ins = [self.materialize(a, span), self.materialize(b, span)]
            return self.graph.add(op, ins, shape=None, dtype=_scalar_type(v.value), span=span)
        if isinstance(v.prov, tuple) and v.prov[0] == "neg":
            return self.graph.add("neg", [self.materialize(v.prov[1], span)], shape=None,
                                  dtype=_scalar_type(v.value), span=span)
        attrs = {"value": v.value}
        if isinstance(v.prov, tuple) and v.prov[0] == "param":
            attrs["param"] = v.prov[1]
        return self.graph.add("const", [], attrs, shape=None, dtype=_scalar_type(v.value), span=span)

    def static(self, v, span, what="value", render=False):
        """Python value of a static, or a clear error.

        Unless the caller can render the value as source (layer arguments),
        the parameters it depends on become fixed in generated code.
        """
        if isinstance(v, Static):
            if not render:
                self.fixed |= v.deps
            return v.value
        if isinstance(v, Many):
            return [self.static(i, span, what, render) for _, i in sorted(v.items.items())]
        kind = {Tensor: "a tensor", LayerRef: "a layer", NewLayer: "a layer", Func: "a function"}.get(type(v), "?")
        raise ShapeError(f"{what} must be known at compile time, got {kind}", span,
                         "layer arguments, axes and sizes are numbers or parameters")

    # --- expressions -------------------------------------------------------------------------
    def eval(self, e):
        if isinstance(e, S.Num):
            return Static(e.value)
        if isinstance(e, S.Str):
            return Static(e.value)
        if isinstance(e, S.Var):
            return self.lookup(e.name, e.span)
        if isinstance(e, S.ListExpr):
            vals = [self.eval(i) for i in e.items]
            if all(isinstance(v, Static) for v in vals):
                deps = frozenset().union(*[v.deps for v in vals]) if vals else frozenset()
                return Static([v.value for v in vals], None,
                              "[" + ", ".join(v.source for v in vals) + "]" if deps else None, deps)
            return Many(dict(enumerate(vals)))
        if isinstance(e, S.Neg):
            v = self.eval(e.operand)
            if isinstance(v, Static):
                return Static(-v.value, ("neg", v), f"(-{v.source})" if v.deps else None, v.deps)
            return self.apply_op("neg", [v], {}, e.span, {})
        if isinstance(e, S.Not):
            v = self.eval(e.operand)
            c = self.static(v, e.span, "a condition", render=True)
            return Static(not c, None, f"(not {v.source})" if v.deps else None, v.deps)
        if isinstance(e, S.IfExp):
            c = self.static(self.eval(e.cond), e.cond.span, "a condition")
            return self.eval(e.then if c else e.orelse)
        if isinstance(e, S.BinOp):
            a, b = self.eval(e.left), self.eval(e.right)
            if e.op in _LOGIC and not (isinstance(a, Static) and isinstance(b, Static)):
                raise ShapeError(f"`{_PYOPS[e.op]}` compares values known at compile time; "
                                 "for tensors use where(), maximum() or minimum()", e.span)
            if isinstance(a, Static) and isinstance(b, Static):
                deps = a.deps | b.deps
                src = f"({a.source} {_PYOPS.get(e.op, '?')} {b.source})" if deps else None
                return Static(arith(e.op, a.value, b.value, e.span), (e.op, a, b), src, deps)
            return self.apply_op(e.op, [a, b], {}, e.span, {})
        if isinstance(e, S.Index):
            base = self.eval(e.base)
            idx = self.static(self.eval(e.index), e.index.span, "an index")
            if isinstance(base, Many):
                if idx not in base.items:
                    raise ShapeError(f"index {idx} out of range (have {sorted(base.items)})", e.index.span)
                return base.items[idx]
            if isinstance(base, Static) and isinstance(base.value, list):
                self.fixed |= base.deps
                return Static(base.value[idx])
            raise ShapeError("only lists can be indexed; use select(x, dim, i) or narrow() on tensors", e.span)
        if isinstance(e, S.Call):
            return self.call(e)
        raise SpecError(f"unsupported expression {type(e).__name__}", e.span)

    def call(self, e: S.Call):
        args = [self.eval(a) for a in e.args]
        kwargs = {k: self.eval(v) for k, (v, _) in e.kwargs.items()}
        kspans = {k: sp for k, (_, sp) in e.kwargs.items()}
        if isinstance(e.func, S.Var):
            name = e.func.name
            local = next((s[name] for s in reversed(self.scopes) if name in s), None)
            if local is None:
                if name in LAYERS:
                    return self.new_layer(name, args, kwargs, e, kspans)
                if name in OPS and (name not in STATIC_ONLY or any(
                        not isinstance(v, Static) for v in list(args) + list(kwargs.values()))):
                    return self.apply_op(name, args, kwargs, e.span, kspans, e.args)
                if name in STATIC_ONLY:
                    try:
                        for a in args:
                            self.static(a, e.span, render=True)
                        return _static_call(name, args, STATIC_ONLY[name](*[a.value for a in args]))
                    except (TypeError, ValueError) as err:
                        raise ShapeError(f"`{name}`: {err}", e.span) from None
                known = list(OPS) + list(LAYERS) + list(STATIC_ONLY) + [n for s in self.scopes for n in s]
                raise NameError_(f"unknown op `{name}`", e.func.span,
                                 did_you_mean(name, known) or "see `attndsl ops` for the list")
            target = local
        else:
            target = self.eval(e.func)
        if isinstance(target, Func):
            return self.inline(target, args, kwargs, e)
        if isinstance(target, LayerRef):
            return self.apply_layer(target, args, kwargs, e)
        raise ShapeError("this value cannot be called", e.func.span)

    def new_layer(self, kind, args, kwargs, e, kspans):
        try:
            sargs = [self.static(a, e.span, f"an argument of `{kind}`", render=True) for a in args]
            skw = {k: self.static(v, kspans[k], f"`{k}`", render=True) for k, v in kwargs.items()}
            bound = LAYERS[kind].signature.bind(*sargs, **skw)
            attrs = LAYERS[kind].fn(*bound.args, **bound.kwargs)
            sbound = LAYERS[kind].signature.bind(*args, **kwargs)
            exprs = {k: v.source for k, v in sbound.arguments.items() if isinstance(v, Static) and v.deps}
        except TypeError as err:
            raise ShapeError(f"`{kind}`: {err}", e.span, f"signature: {kind}{LAYERS[kind].signature}") from None
        except OpError as err:
            raise ShapeError(f"`{kind}`: {err}", kspans.get(err.arg, e.span), err.hint) from None
        return NewLayer(kind, attrs, e.span, exprs)

    def apply_layer(self, ref: LayerRef, args, kwargs, e):
        decl = self.graph.layers[ref.name]
        if kwargs or len(args) != 1 or not isinstance(args[0], Tensor):
            raise ShapeError(f"layer `{ref.name}` takes one tensor", e.span)
        x = args[0]
        try:
            shape = layer_apply_shape(decl.kind, decl.args, T(x.nid, self.shape(x)))
        except OpError as err:
            raise ShapeError(f"`{ref.name}`: {err}", e.span, err.hint) from None
        return Tensor(self.graph.add("layer", [x.nid], {"layer": ref.name}, shape, span=e.span))

    def apply_op(self, name, args, kwargs, span, kspans, arg_exprs=None):
        opdef = OPS[name]

        def conv(v, sp):
            if isinstance(v, Tensor):
                return T(v.nid, self.shape(v), sp)
            if isinstance(v, Static):
                if name not in BUFFER_OPS:
                    self.fixed |= v.deps
                return v.value
            if isinstance(v, Many):
                return [conv(i, sp) for _, i in sorted(v.items.items())]
            raise ShapeError(f"`{name}` cannot take a layer or function as an argument", sp)

        spans = [a.span for a in (arg_exprs or [])] + [span] * len(args)
        cargs = [conv(v, spans[i]) for i, v in enumerate(args)]
        ckw = {k: conv(v, kspans.get(k, span)) for k, v in kwargs.items()}
        try:
            bound = opdef.signature.bind(*cargs, **ckw)
        except TypeError as err:
            raise ShapeError(f"`{name}`: {err}", span, f"signature: {name}{opdef.signature}") from None
        try:
            out = opdef.fn(*bound.args, **bound.kwargs)
        except OpError as err:
            where = kspans.get(err.arg) or _arg_span(opdef, err.arg, arg_exprs) or span
            raise ShapeError(f"`{name}`: {err}", where, err.hint) from None
        inputs = []
        for v in out.inputs:
            if isinstance(v, T):
                inputs.append(v.nid)
            else:   # a static operand of arithmetic
                sv = next((a for a in args if isinstance(a, Static) and a.value is v), Static(v))
                inputs.append(self.materialize(sv, span))
        if out.n_outputs:
            nid = self.graph.add(name, inputs, out.attrs, None, dtype="tuple", span=span)
            items = {i: Tensor(self.graph.add("getitem", [nid], {"index": i}, s, span=span))
                     for i, s in enumerate(out.shapes)}
            return Many(items)
        dtype = out.dtype if out.shape is not None else _scalar_type(0.0)
        nid = self.graph.add(name, inputs, out.attrs, out.shape, dtype=dtype, span=span)
        if name in BUFFER_OPS:
            sb = opdef.signature.bind(*args, **kwargs)
            self.graph.node(nid)["exprs"] = {k: v.source for k, v in sb.arguments.items()
                                             if isinstance(v, Static) and v.deps}
        return Tensor(nid)

    def inline(self, fn: Func, args, kwargs, e):
        d = fn.node
        if len(args) + len(kwargs) != len(d.params) or any(k not in d.params for k in kwargs):
            raise ShapeError(f"`{d.name}` takes {len(d.params)} argument(s) ({', '.join(d.params)})", e.span)
        scope = dict(zip(d.params, args))
        scope.update(kwargs)
        self.scopes.append(scope)
        try:
            self.run(d.body)
        except _Return as r:
            vals = r.values
            return vals[0] if len(vals) == 1 else Many(dict(enumerate(vals)))
        finally:
            self.scopes.pop()
        raise ShapeError(f"`{d.name}` returned nothing", d.span)

    # --- statements ---------------------------------------------------------------------------
    def run(self, stmts):
        for st in stmts:
            if isinstance(st, S.Assign):
                self.assign(st)
            elif isinstance(st, S.Def):
                self.bind(st.name, Func(st))
            elif isinstance(st, S.For):
                seq = self.static(self.eval(st.iterable), st.iterable.span, "a loop range")
                if not isinstance(seq, list):
                    raise ShapeError("a loop runs over a list or range(n)", st.iterable.span)
                for v in seq:
                    self.bind(st.var, Static(v))
                    self.run(st.body)
            elif isinstance(st, S.If):
                cond = self.static(self.eval(st.cond), st.cond.span, "an `if` condition")
                self.run(st.then if cond else st.orelse)
            elif isinstance(st, S.Return):
                if len(self.scopes) == 1:
                    raise SpecError("`return` outside a function", st.span)
                raise _Return([self.eval(v) for v in st.values])

    def assign(self, st: S.Assign):
        value = self.eval(st.value)
        if len(st.targets) > 1:
            if not isinstance(value, Many) or len(value.items) != len(st.targets):
                n = len(value.items) if isinstance(value, Many) else 1
                raise ShapeError(f"{len(st.targets)} names on the left, {n} value(s) on the right", st.span)
            for t, (_, v) in zip(st.targets, sorted(value.items.items())):
                self.assign_one(t, v)
        else:
            self.assign_one(st.targets[0], value)

    def assign_one(self, t: S.Target, value):
        name = t.name
        if name in self.params or name in RESERVED:
            raise SpecError(f"`{name}` is a parameter or constant and cannot be reassigned", t.span)
        if t.index is not None:
            idx = self.static(self.eval(t.index), t.index.span, "an index")
            full = f"{name}.{idx}"
            coll = next((s[name] for s in reversed(self.scopes) if name in s), None)
            if not isinstance(coll, Many):
                coll = Many({}, name)
                self.bind(name, coll)
            coll.items[idx] = self.declare(full, value, t.span)
            return
        self.bind(name, self.declare(name, value, t.span))

    def declare(self, name, value, span):
        if isinstance(value, NewLayer):
            if len(self.scopes) > 1:
                raise SpecError("declare layers at the top level of g or f, not inside a function", span)
            if name in self.graph.layers:
                raise SpecError(f"layer `{name}` is declared twice", span,
                                "use the first one again to share its weights")
            self.graph.layers[name] = LayerDecl(value.kind, value.args, value.span, value.exprs)
            if value.kind == "param":
                return Tensor(self.graph.add("param", [], {"layer": name}, value.args["shape"], span=span,
                                             name=name.replace(".", "_")))
            return LayerRef(name)
        if isinstance(value, Tensor):
            node = self.graph.node(value.nid)
            if not node["name"] and len(self.scopes) == 1:
                node["name"] = name.replace(".", "_")
        return value


def _arg_span(opdef, arg, exprs):
    if arg is None or not exprs:
        return None
    names = list(opdef.signature.parameters)
    if arg in names and names.index(arg) < len(exprs):
        return exprs[names.index(arg)].span
    return None


def _scalar_type(v):
    return "int" if isinstance(v, int) and not isinstance(v, bool) else "float"


def input_shape(spec: Spec, params: dict, name: str) -> tuple:
    """Declared shape of an input: parameters become numbers, other names symbols, `*S` a pack."""
    dims = []
    packs = 0
    for i, d in enumerate(spec.inputs[name]):
        span = spec.span("inputs", name, i)
        if isinstance(d, int) and not isinstance(d, bool):
            dims.append(d)
        elif isinstance(d, str) and d.startswith("*") and d[1:].isidentifier():
            packs += 1
            dims.append(Pack(d[1:]))
        elif isinstance(d, str) and d.isidentifier():
            dims.append(params[d] if d in params else sym(d))
        elif isinstance(d, str):
            src = Source(spec.path, d, span.line - 1 if span else 0, (span.col - 1) if span else 0, spec.lines)
            expr = parse_expression(src)
            syms = {}

            def get(n):
                return params[n] if n in params else syms.setdefault(n, sym(n))
            names = _names(expr)
            dims.append(norm(eval_static(expr, get, set(names))))
        else:
            raise SpecError(f"bad dimension {d!r} in input `{name}`", span, "a dimension is a name, a number or *S")
        if packs > 1:
            raise SpecError(f"input `{name}` has more than one variadic part", span)
    return tuple(dims)


def _names(expr):
    out = []
    if isinstance(expr, S.Var):
        out.append(expr.name)
    for v in vars(expr).values() if hasattr(expr, "__dict__") else ():
        if isinstance(v, S.Node):
            out += _names(v)
        elif isinstance(v, list):
            for i in v:
                if isinstance(i, S.Node):
                    out += _names(i)
    return out


def build_graph(spec: Spec, params: dict) -> Graph:
    fe = Frontend(spec, params)
    for name in spec.inputs:
        shape = input_shape(spec, params, name)
        nid = fe.graph.add("input", [], {"name": name}, shape, span=spec.span("inputs", name, "@key"), name=name)
        fe.graph.inputs.append((name, nid))
        fe.bind(name, Tensor(nid))
    for src in (spec.g, spec.f):
        if src is not None:
            fe.run(parse_program(src))
    fe.graph.meta["fixed"] = sorted(fe.fixed)
    # the tensor each top-level name holds at the end: what a spec's `maps:` refers to
    fe.graph.meta["values"] = {k: v.nid for k, v in fe.scopes[0].items() if isinstance(v, Tensor)}
    for name in spec.outputs:
        span = spec.span("outputs")
        v = fe.scopes[0].get(name)
        if v is None:
            raise NameError_(f"output `{name}` is never assigned", span,
                             did_you_mean(name, fe.scopes[0]) or "assign it in `f`")
        if not isinstance(v, Tensor):
            raise ShapeError(f"output `{name}` is not a tensor", span)
        fe.graph.outputs.append((name, v.nid))
    return fe.graph
