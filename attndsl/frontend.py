"""Frontend: a spec and its parameter values -> IR graph with inferred shapes.

Input: a `Spec` and resolved parameter values. Output: an `ir.Graph` whose
nodes carry shapes (symbolic where the inputs are), layers declared inline
as named submodules, and source spans for every node. Evaluation is symbolic:
loops unroll, user functions inline, static arithmetic is computed in Python
(and recorded, so that a static used as a tensor operand becomes foldable IR).
Entry point: `build_graph`.
"""

from __future__ import annotations

import keyword
import math
from dataclasses import dataclass

import sympy

from . import inits, limits, syntax as S
from .errors import NameError_, ShapeError, Span, SpecError, did_you_mean
from .ir import Graph, LayerDecl
from .ops import LAYERS, LIST_ARGS, OPS, OpError, T, layer_apply_shape, layer_numel, static_builtins, tensor_args
from .shapes import Pack, assuming, is_int, is_symbolic, norm, sym
from .spec import Spec, arith, check_value, eval_static
from .syntax import Source, parse_expression, parse_program

BUFFER_OPS = tuple(name for name, d in OPS.items() if d.buffer)  # constants rebuilt from parameters
CONSTANTS = {"true": True, "false": False, "spatial": "spatial", "none": None, "pi": math.pi}
RESERVED = ("true", "false", "spatial", "none")  # constants a program cannot rebind (pi it may: π_k)
# attributes of torch.nn.Module and torch.fx.GraphModule: a layer of that name would replace them
# (kept torch-free here; tests/test_hostile.py checks the list against torch)
MODULE_ATTRS = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu
cuda double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half
ipu load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters
register_backward_hook register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
register_full_backward_pre_hook register_load_state_dict_post_hook register_load_state_dict_pre_hook
register_module register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
set_extra_state set_submodule share_memory state_dict to to_empty train type xpu zero_grad training
add_submodule code delete_all_unused_submodules delete_submodule graph print_readable recompile to_folder meta
""".split()
)
MAX_STATIC_DEPTH = 32  # a compile-time value's recorded computation; deeper ones become plain constants
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
    prov: tuple | None = None  # (op, Static, Static), ("neg", Static), ("param", name) or None
    src: str | None = None
    deps: frozenset = frozenset()
    depth: int = 0  # how deep prov and src nest

    @property
    def source(self) -> str:
        return self.src if self.src is not None else repr(self.value)


_PYOPS = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "floordiv": "//",
    "mod": "%",
    "pow": "**",
    "and": "and",
    "or": "or",
    "==": "==",
    "!=": "!=",
    "<": "<",
    ">": ">",
    "<=": "<=",
    ">=": ">=",
}
_LOGIC = ("and", "or", "==", "!=", "<", ">", "<=", ">=")
_TENSOR_LOGIC = {
    "and": "logical_and",
    "or": "logical_or",
    "==": "eq",
    "!=": "ne",
    "<": "lt",
    ">": "gt",
    "<=": "le",
    ">=": "ge",
}
_PYFUNCS = {"floor": "math.floor", "ceil": "math.ceil", "log": "math.log", "log2": "math.log2", "sqrt": "math.sqrt"}


def _static_call(name, vals, value):
    srcs = [v.source for v in vals]
    deps = frozenset().union(*[v.deps for v in vals]) if vals else frozenset()
    if name == "odd":
        src = f"({srcs[0]} | 1)"  # t if t is odd else t + 1, for t >= 0
    else:
        src = f"{_PYFUNCS.get(name, name)}({', '.join(srcs)})"
    return Static(value, None, src if deps else None, deps, 1 + max((v.depth for v in vals), default=0))


def _kind(v) -> str:
    """What an evaluator value is, for type errors."""
    if isinstance(v, Static):
        if is_symbolic(v.value):
            return "a run-time size"
        if isinstance(v.value, bool):
            return "a boolean"
        if isinstance(v.value, (int, float)):
            return "a number"
        return {str: "a string", list: "a list", type(None): "none", inits.Init: "an init"}.get(
            type(v.value), "a value"
        )
    return {Tensor: "a tensor", Many: "a list", LayerRef: "a layer", NewLayer: "a layer", Func: "a function"}.get(
        type(v), "a value"
    )


def _has_tensor(v) -> bool:
    return isinstance(v, Tensor) or isinstance(v, Many) and any(_has_tensor(i) for i in v.items.values())


def _arith_operand(v) -> bool:
    """A tensor, a number, or a runtime number: what arithmetic takes."""
    return (
        isinstance(v, Tensor) or isinstance(v, Static) and (isinstance(v.value, (int, float)) or is_symbolic(v.value))
    )


def _symbolic_in(v):
    """The first run-time size in a static value (lists searched), or None."""
    if is_symbolic(v):
        return v
    if isinstance(v, (list, tuple)):
        return next((s for s in map(_symbolic_in, v) if s is not None), None)
    return None


def _as_axis_names(v):
    """A static value for an argument that takes no run-time size: a bare symbolic size names its axis (`dim=T`)."""
    if isinstance(v, sympy.Symbol):
        return v.name
    if isinstance(v, list):
        return [_as_axis_names(i) for i in v]
    return v


_SYM_FUNCS = {"floor": sympy.floor, "ceil": sympy.ceiling}  # builtins that take run-time sizes
_SYM_COMPARE = {"==": sympy.Eq, "!=": sympy.Ne, "<": sympy.Lt, ">": sympy.Gt, "<=": sympy.Le, ">=": sympy.Ge}


@dataclass
class NewLayer:
    kind: str
    args: dict
    span: Span
    exprs: dict  # argument -> Python source over parameters, where it depends on them


@dataclass
class LayerRef:
    name: str


@dataclass
class Many:
    """A list of values: `split` results, `u[i]` bindings, list literals with tensors."""

    items: dict  # index -> value
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
        self.fixed: set = set()  # parameters that generated code cannot vary
        self.axis_names = {
            d.lstrip("*")
            for dims in spec.inputs.values()
            for d in dims
            if isinstance(d, str) and d.lstrip("*").isidentifier() and d not in params
        }
        self.pack_names = {
            d[1:] for dims in spec.inputs.values() for d in dims if isinstance(d, str) and d.startswith("*")
        }
        self.depth = 0  # evaluation nesting, through inlined functions too
        self.calls = 0  # user functions being inlined, one inside the other
        self.steps = 0  # statements run (loops unrolled, functions inlined)

    # --- names -------------------------------------------------------------------------
    def lookup(self, name: str, span: Span):
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in self.params:
            return Static(self.params[name], ("param", name), name, frozenset([name]))
        if name in CONSTANTS:
            return Static(CONSTANTS[name])
        if name in self.axis_names:
            if name in self.pack_names:  # a run of axes: mean(x, dims=S)
                return Static(name)
            # a symbolic size: names its axis (softmax(a, dim=T)), or is its size, read at run time (H - 1)
            return Static(sym(name))
        known = [n for s in self.scopes for n in s] + list(self.params) + list(CONSTANTS)
        raise NameError_(
            f"undefined name `{name}`",
            span,
            did_you_mean(name, known) or "assign it first, or declare it under `params`/`inputs`",
        )

    def bind(self, name: str, value):
        self.scopes[-1][name] = value

    # --- graph helpers -----------------------------------------------------------------------
    def shape(self, v: Tensor):
        return self.graph.node(v.nid)["shape"]

    def materialize(self, v: Static, span) -> int:
        """A static number as IR: its whole computation, so constant folding can see it."""
        if is_symbolic(v.value):  # a run-time size: read off the inputs when the block runs
            return self.graph.add(
                "symsize", [], {"expr": v.value}, shape=None, dtype="int" if is_int(v.value) else "float", span=span
            )
        if isinstance(v.prov, tuple) and v.prov[0] not in ("param",) and len(v.prov) == 3:
            op, a, b = v.prov
            ins = [self.materialize(a, span), self.materialize(b, span)]
            return self.graph.add(op, ins, shape=None, dtype=_scalar_type(v.value), span=span)
        if isinstance(v.prov, tuple) and v.prov[0] == "neg":
            return self.graph.add(
                "neg", [self.materialize(v.prov[1], span)], shape=None, dtype=_scalar_type(v.value), span=span
            )
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
            size = _symbolic_in(v.value)
            if size is not None:
                raise ShapeError(
                    f"`{size}` is a run-time size; {what} must be known at compile time",
                    span,
                    "run-time sizes go to op arguments (narrow, view, pad, interpolate...) and "
                    "arithmetic; conditions, loops, indices and layers take parameters",
                )
            if not render:
                self.fixed |= v.deps
            return v.value
        if isinstance(v, Many):
            return [self.static(i, span, what, render) for _, i in sorted(v.items.items())]
        kind = {Tensor: "a tensor", LayerRef: "a layer", NewLayer: "a layer", Func: "a function"}.get(type(v), "?")
        raise ShapeError(
            f"{what} must be known at compile time, got {kind}",
            span,
            "layer arguments, axes and sizes are numbers or parameters",
        )

    def derived(self, value, prov, src, deps, parts, span):
        """A static computed from others: checked against the limits; a deep computation becomes a constant."""
        value = check_value(value, span)
        depth = 1 + max((p.depth for p in parts), default=0)
        if depth > MAX_STATIC_DEPTH:  # generated code and folding keep the value, not its history
            self.fixed |= deps
            return Static(value)
        return Static(value, prov, src, deps, depth)

    # --- expressions -------------------------------------------------------------------------
    def eval(self, e):
        self.depth += 1
        try:
            if self.depth > limits.MAX_NESTING:
                raise SpecError(
                    f"evaluation nests deeper than {limits.MAX_NESTING} levels",
                    e.span,
                    "functions inline into their callers: nest fewer calls (docs/language.md, Limits)",
                )
            return self._eval(e)
        finally:
            self.depth -= 1

    def _eval(self, e):
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
                return self.derived(
                    [v.value for v in vals],
                    None,
                    "[" + ", ".join(v.source for v in vals) + "]" if deps else None,
                    deps,
                    vals,
                    e.span,
                )
            return Many(dict(enumerate(vals)))
        if isinstance(e, S.Neg):
            v = self.eval(e.operand)
            if isinstance(v, Static):
                if is_symbolic(v.value):
                    return self.size_value(-v.value, [v], e.span)
                if not isinstance(v.value, (int, float)):
                    raise ShapeError(f"`-` needs a tensor or a number, got {_kind(v)}", e.span)
                return self.derived(-v.value, ("neg", v), f"(-{v.source})" if v.deps else None, v.deps, [v], e.span)
            if not _arith_operand(v):
                raise ShapeError(f"`-` needs a tensor or a number, got {_kind(v)}", e.span)
            return self.apply_op("neg", [v], {}, e.span, {})
        if isinstance(e, S.Not):
            v = self.eval(e.operand)
            if isinstance(v, Tensor):  # a mask
                return self.apply_op("logical_not", [v], {}, e.span, {})
            c = self.static(v, e.span, "a condition", render=True)
            return self.derived(not c, None, f"(not {v.source})" if v.deps else None, v.deps, [v], e.span)
        if isinstance(e, S.IfExp):
            c = self.static(self.eval(e.cond), e.cond.span, "a condition")
            return self.eval(e.then if c else e.orelse)
        if isinstance(e, S.BinOp):
            a, b = self.eval(e.left), self.eval(e.right)
            if e.op in _LOGIC and not (isinstance(a, Static) and isinstance(b, Static)):
                return self.tensor_logic(e, a, b)
            if isinstance(a, Static) and isinstance(b, Static) and (is_symbolic(a.value) or is_symbolic(b.value)):
                return self.size_arith(e, a, b)
            if isinstance(a, Static) and isinstance(b, Static):
                deps = a.deps | b.deps
                src = f"({a.source} {_PYOPS.get(e.op, '?')} {b.source})" if deps else None
                return self.derived(arith(e.op, a.value, b.value, e.span), (e.op, a, b), src, deps, [a, b], e.span)
            for v in (a, b):
                if not _arith_operand(v):
                    raise ShapeError(
                        f"`{_PYOPS.get(e.op, e.op)}` needs tensors or numbers, got {_kind(v)}",
                        e.span,
                        "lists of tensors go through stack() or concat(); a list of numbers is not a tensor",
                    )
            return self.apply_op(e.op, [a, b], {}, e.span, {})
        if isinstance(e, S.Index):
            base = self.eval(e.base)
            idx = self.static(self.eval(e.index), e.index.span, "an index")
            if isinstance(base, Many):
                if not isinstance(idx, (int, str)):
                    raise ShapeError(
                        f"an item key is an integer or a name, got {_kind(self.eval(e.index))}", e.index.span
                    )
                if idx not in base.items:
                    raise ShapeError(f"index {idx} out of range (have {sorted(base.items)})", e.index.span)
                return base.items[idx]
            if isinstance(base, Static) and isinstance(base.value, list):
                if isinstance(idx, bool) or not isinstance(idx, int):
                    raise ShapeError(f"a list index must be an integer, got {idx!r}", e.index.span)
                if not -len(base.value) <= idx < len(base.value):
                    raise ShapeError(f"index {idx} out of range for a list of {len(base.value)}", e.index.span)
                self.fixed |= base.deps
                return Static(base.value[idx])
            raise ShapeError("only lists can be indexed; use select(x, dim, i) or narrow() on tensors", e.span)
        if isinstance(e, S.Call):
            return self.call(e)
        raise SpecError(f"unsupported expression {type(e).__name__}", e.span)

    def size_arith(self, e, a, b):
        """Arithmetic with a run-time size: a sympy expression, its value read from the inputs when the block runs."""
        sym_op = _PYOPS.get(e.op, e.op)
        for v in (a, b):
            if not (_arith_operand(v) and not isinstance(v.value, bool)):
                raise ShapeError(
                    f"`{sym_op}` needs numbers, got {_kind(v)}",
                    e.span,
                    "arithmetic on run-time sizes takes numbers, parameters and sizes",
                )
        x, y = sympy.sympify(a.value), sympy.sympify(b.value)
        if e.op in _SYM_COMPARE:
            r = _SYM_COMPARE[e.op](x, y)
            if r in (sympy.true, sympy.false):
                return Static(bool(r))
        if e.op in _LOGIC:
            raise ShapeError(
                f"`{x} {sym_op} {y}` depends on run-time sizes; a condition must be known at compile time",
                e.span,
                "compare parameters, or make a mask from tensors",
            )
        if e.op in ("div", "floordiv", "mod") and y == 0:
            raise ShapeError("division by zero", e.span)
        self.fixed |= a.deps | b.deps  # a parameter's value is built into the expression
        r = {
            "add": lambda: x + y,
            "sub": lambda: x - y,
            "mul": lambda: x * y,
            "div": lambda: x / y,
            "floordiv": lambda: sympy.floor(x / y),
            "mod": lambda: sympy.Mod(x, y),
            "pow": lambda: x**y,
        }[e.op]()
        return self.size_value(r, [a, b], e.span)

    def size_value(self, r, parts, span):
        """A run-time size computed from `parts`, within the nesting limit (sympy works on the whole tree)."""
        depth = 1 + max(p.depth for p in parts)
        if depth > limits.MAX_SIZE_DEPTH:
            raise SpecError(
                f"a run-time size expression nests more than {limits.MAX_SIZE_DEPTH} operations",
                span,
                "compute fewer steps on sizes (docs/language.md, Limits)",
            )
        r = _number(r)
        return Static(r, depth=depth) if is_symbolic(r) else Static(r)

    def size_call(self, name, args, e):
        """floor() or ceil() of a run-time size; other builtins need compile-time values."""
        if name not in _SYM_FUNCS or len(args) != 1 or e.kwargs:
            size = next(_symbolic_in(a.value) for a in args if _symbolic_in(a.value) is not None)
            raise ShapeError(
                f"`{name}` of the run-time size `{size}` is not supported",
                e.span,
                "run-time sizes take + - * / // % ** and floor/ceil",
            )
        return self.size_value(_SYM_FUNCS[name](sympy.sympify(args[0].value)), args, e.span)

    def tensor_logic(self, e, a, b):
        """A comparison or and/or with a tensor operand: a float mask (ops.COMPARISONS)."""
        name = _TENSOR_LOGIC[e.op]
        logical = name.startswith("logical")
        for v in (a, b):
            if not _arith_operand(v) or logical and not isinstance(v, Tensor):
                raise ShapeError(
                    f"`{_PYOPS[e.op]}` needs {'two masks' if logical else 'tensors or numbers'}, got {_kind(v)}",
                    e.span,
                    "a condition known at compile time compares parameters; a mask compares tensors",
                )
        return self.apply_op(name, [a, b], {}, e.span, {})

    def call(self, e: S.Call):
        args = [self.eval(a) for a in e.args]
        kwargs = {k: self.eval(v) for k, (v, _) in e.kwargs.items()}
        kspans = {k: sp for k, (_, sp) in e.kwargs.items()}
        if isinstance(e.func, S.Var):
            name = e.func.name
            local = next((s[name] for s in reversed(self.scopes) if name in s), None)
            if local is None:
                if name in inits.TABLE:
                    return self.init_call(name, args, kwargs, e, kspans)
                if name in LAYERS:
                    return self.new_layer(name, args, kwargs, e, kspans)
                if name in OPS and (
                    name not in STATIC_ONLY
                    or any(not isinstance(v, Static) for v in list(args) + list(kwargs.values()))
                ):
                    return self.apply_op(name, args, kwargs, e.span, kspans, e.args)
                if name in STATIC_ONLY and any(
                    isinstance(a, Static) and _symbolic_in(a.value) is not None
                    for a in list(args) + list(kwargs.values())
                ):
                    return self.size_call(name, args, e)
                if name in STATIC_ONLY:
                    if kwargs:
                        raise ShapeError(f"`{name}` takes no keyword arguments", e.span)
                    try:
                        for a in args:
                            self.static(a, e.span, render=True)
                        value = check_value(
                            STATIC_ONLY[name](*[a.value for a in args]), e.span, f"the result of `{name}`"
                        )
                        return _static_call(name, args, value)
                    except (TypeError, ValueError, OverflowError) as err:
                        raise ShapeError(
                            f"`{name}`: {err}",
                            e.span,
                            "loops unroll at compile time (docs/language.md, Limits)"
                            if isinstance(err, limits.LimitExceeded)
                            else None,
                        ) from None
                known = (
                    list(OPS)
                    + list(LAYERS)
                    + list(STATIC_ONLY)
                    + list(inits.TABLE)
                    + [n for s in self.scopes for n in s]
                )
                raise NameError_(
                    f"unknown op `{name}`", e.func.span, did_you_mean(name, known) or "see `attndsl ops` for the list"
                )
            target = local
        else:
            target = self.eval(e.func)
        if isinstance(target, Func):
            return self.inline(target, args, kwargs, e)
        if isinstance(target, LayerRef):
            return self.apply_layer(target, args, kwargs, e)
        raise ShapeError("this value cannot be called", e.func.span)

    def init_call(self, name, args, kwargs, e, kspans):
        """`kaiming_normal(mode="fan_out")`: a compile-time init description (inits.py), for `*_init=`."""
        spans = [a.span for a in e.args]

        def conv(v, sp):
            if isinstance(v, LayerRef):
                return inits.Ref(v.name)
            if isinstance(v, Tensor) and self.graph.node(v.nid)["op"] == "param":
                return inits.Ref(self.graph.node(v.nid)["attrs"]["layer"])
            if isinstance(v, Static) and isinstance(v.value, (bool, int, float, str)):
                return v.value, (v.source if v.deps else None)
            raise ShapeError(
                f"`{name}`: an init argument is a number, a string, or a declared layer for `tied`, got {_kind(v)}",
                sp,
                f"signature: {inits.signature(name)}",
            )

        try:
            value = inits.make(
                name,
                [conv(v, spans[i]) for i, v in enumerate(args)],
                {k: conv(v, kspans[k]) for k, v in kwargs.items()},
            )
        except OpError as err:
            where = kspans.get(err.arg) or next(
                (spans[i] for i, (a, _, _) in enumerate(inits.TABLE[name][0]) if a == err.arg and i < len(spans)),
                e.span,
            )
            raise ShapeError(str(err), where, err.hint) from None
        return Static(value)

    def new_layer(self, kind, args, kwargs, e, kspans):
        spans = [a.span for a in e.args] + [kspans.get(k, e.span) for k in kwargs]
        for v, sp in zip(list(args) + list(kwargs.values()), spans):
            size = _symbolic_in(v.value) if isinstance(v, Static) else None
            if size is not None:
                raise ShapeError(
                    f"`{size}` is a run-time size; layer sizes must be parameters",
                    sp,
                    "declare a parameter and use it in the input's shape: x: [B, channels, H, W]",
                )
        try:
            sargs = [self.static(a, e.span, f"an argument of `{kind}`", render=True) for a in args]
            skw = {k: self.static(v, kspans[k], f"`{k}`", render=True) for k, v in kwargs.items()}
            bound = LAYERS[kind].signature.bind(*sargs, **skw)
            attrs = LAYERS[kind].fn(*bound.args, **bound.kwargs)
            sbound = LAYERS[kind].signature.bind(*args, **kwargs)
            exprs = {k: v.source for k, v in sbound.arguments.items() if isinstance(v, Static) and v.deps}
            inits.check_fits(kind, attrs, {n: (d.kind, d.args) for n, d in self.graph.layers.items()})
        except (TypeError, ValueError) as err:
            raise ShapeError(f"`{kind}`: {err}", e.span, f"signature: {kind}{LAYERS[kind].signature}") from None
        except OpError as err:
            raise ShapeError(f"`{kind}`: {err}", kspans.get(err.arg, e.span), err.hint) from None
        n = layer_numel(kind, attrs)
        if n > limits.MAX_ELEMENTS:
            raise ShapeError(
                f"`{kind}` would allocate {n:,} elements, over the limit of {limits.MAX_ELEMENTS:,}",
                e.span,
                "check the sizes and parameters (docs/language.md, Limits)",
            )
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
        targs = tensor_args(name)

        def conv(v, sp, arg):
            if isinstance(v, Tensor):
                return T(v.nid, self.shape(v), sp)
            if isinstance(v, Static):
                if name not in BUFFER_OPS:
                    self.fixed |= v.deps
                if arg in targs or arg in opdef.runtime:
                    return v.value
                axis = arg is not None and (arg.startswith("dim") or name == "flatten" and arg in ("start", "end"))
                value = _as_axis_names(v.value) if axis else v.value  # dim=T: the axis of size T
                size = _symbolic_in(value)
                if size is not None:
                    raise ShapeError(
                        f"`{name}`: `{arg}` must be known at compile time; `{size}` is a run-time size",
                        sp,
                        "an axis is an integer or a symbolic size alone (dim=T)"
                        if axis
                        else "this argument takes numbers and parameters",
                    )
                return value
            if isinstance(v, Many):
                return [conv(i, sp, arg) for _, i in sorted(v.items.items())]
            raise ShapeError(f"`{name}` cannot take a layer or function as an argument", sp)

        spans = [a.span for a in (arg_exprs or [])] + [span] * len(args)
        self.check_kinds(name, opdef, args, kwargs, spans, kspans, span)
        names = list(opdef.signature.parameters)
        var_kw = next((k for k, p in opdef.signature.parameters.items() if p.kind.name == "VAR_KEYWORD"), None)
        cargs = [conv(v, spans[i], names[i] if i < len(names) else None) for i, v in enumerate(args)]
        ckw = {k: conv(v, kspans.get(k, span), k if k in names else var_kw) for k, v in kwargs.items()}
        try:
            bound = opdef.signature.bind(*cargs, **ckw)
        except TypeError as err:
            raise ShapeError(f"`{name}`: {err}", span, f"signature: {name}{opdef.signature}") from None
        try:
            out = opdef.fn(*bound.args, **bound.kwargs)
        except OpError as err:
            where = kspans.get(err.arg) or _arg_span(opdef, err.arg, arg_exprs) or span
            raise ShapeError(f"`{name}`: {err}", where, err.hint) from None
        except (TypeError, ValueError, ArithmeticError) as err:  # a value the rule did not expect
            raise ShapeError(f"`{name}`: bad argument ({err})", span, f"signature: {name}{opdef.signature}") from None
        if out.n_outputs > limits.MAX_LIST:
            raise ShapeError(
                f"`{name}` would make {out.n_outputs} results, over the limit of {limits.MAX_LIST}",
                span,
                "docs/language.md, Limits",
            )
        if name in BUFFER_OPS:
            n = math.prod(out.shape)
            if n > limits.MAX_ELEMENTS:
                raise ShapeError(
                    f"`{name}` would allocate {n:,} elements, over the limit of {limits.MAX_ELEMENTS:,}",
                    span,
                    "docs/language.md, Limits",
                )
        inputs = []
        for v in out.inputs:
            if isinstance(v, T):
                inputs.append(v.nid)
            else:  # a static operand of arithmetic
                sv = next((a for a in args if isinstance(a, Static) and a.value is v), Static(v))
                inputs.append(self.materialize(sv, span))
        if out.n_outputs:
            nid = self.graph.add(name, inputs, out.attrs, None, dtype="tuple", span=span)
            items = {
                i: Tensor(self.graph.add("getitem", [nid], {"index": i}, s, span=span))
                for i, s in enumerate(out.shapes)
            }
            return Many(items)
        dtype = out.dtype if out.shape is not None else _scalar_type(0.0)
        nid = self.graph.add(name, inputs, out.attrs, out.shape, dtype=dtype, span=span)
        if name in BUFFER_OPS:
            sb = opdef.signature.bind(*args, **kwargs)
            self.graph.node(nid)["exprs"] = {
                k: v.source for k, v in sb.arguments.items() if isinstance(v, Static) and v.deps
            }
        return Tensor(nid)

    def check_kinds(self, name, opdef, args, kwargs, spans, kspans, span):
        """The type check of an op call: tensors where tensors go, compile-time values elsewhere."""
        try:
            bound = opdef.signature.bind(*args, **kwargs)
        except TypeError as err:
            raise ShapeError(f"`{name}`: {err}", span, f"signature: {name}{opdef.signature}") from None
        names = list(opdef.signature.parameters)
        targs = tensor_args(name)
        for arg, v in bound.arguments.items():
            where = kspans.get(arg) or (spans[names.index(arg)] if names.index(arg) < len(args) else span)
            values = v.items() if opdef.signature.parameters[arg].kind.name == "VAR_KEYWORD" else [(arg, v)]
            for label, v in values:
                if arg not in targs:
                    if _has_tensor(v):
                        raise ShapeError(
                            f"`{name}`: `{label}` must be known at compile time, got a tensor",
                            where,
                            "sizes, axes and options are numbers, strings or parameters",
                        )
                    if isinstance(v, (LayerRef, NewLayer, Func)):
                        raise ShapeError(f"`{name}`: `{label}` cannot be {_kind(v)}", where)
                elif arg in LIST_ARGS:
                    if not isinstance(v, Many) or not all(isinstance(i, Tensor) for i in v.items.values()):
                        raise ShapeError(f"`{name}`: `{arg}` must be a list of tensors, got {_kind(v)}", where)
                elif not (
                    _arith_operand(v)
                    or isinstance(v, Static)
                    and v.value is None
                    and opdef.signature.parameters[arg].default is None
                ):
                    raise ShapeError(f"`{name}`: `{arg}` must be a tensor, got {_kind(v)}", where)

    def inline(self, fn: Func, args, kwargs, e):
        d = fn.node
        if len(args) + len(kwargs) != len(d.params) or any(k not in d.params for k in kwargs):
            raise ShapeError(f"`{d.name}` takes {len(d.params)} argument(s) ({', '.join(d.params)})", e.span)
        if self.calls >= limits.MAX_CALL_DEPTH:
            raise SpecError(
                f"functions call each other more than {limits.MAX_CALL_DEPTH} deep",
                e.span,
                "a function that calls itself never ends (docs/language.md, Limits)",
            )
        scope = dict(zip(d.params, args))
        scope.update(kwargs)
        self.scopes.append(scope)
        self.calls += 1
        try:
            self.run(d.body)
        except _Return as r:
            vals = r.values
            return vals[0] if len(vals) == 1 else Many(dict(enumerate(vals)))
        finally:
            self.scopes.pop()
            self.calls -= 1
        raise ShapeError(f"`{d.name}` returned nothing", d.span)

    # --- statements ---------------------------------------------------------------------------
    def run(self, stmts):
        for st in stmts:
            self.steps += 1
            if self.steps > limits.MAX_UNROLLED:
                raise SpecError(
                    f"unrolling runs more than {limits.MAX_UNROLLED:,} statements",
                    st.span,
                    "loops and functions unroll at compile time: fewer iterations (docs/language.md, Limits)",
                )
            if len(self.graph) > limits.MAX_IR_NODES:
                raise SpecError(
                    f"the program makes more than {limits.MAX_IR_NODES:,} IR nodes",
                    st.span,
                    "loops unroll at compile time: fewer iterations (docs/language.md, Limits)",
                )
            if isinstance(st, S.Assign):
                self.assign(st)
            elif isinstance(st, S.Def):
                _check_name(st.name, st.span)
                for p in st.params:
                    _check_name(p, st.span)
                self.bind(st.name, Func(st))
            elif isinstance(st, S.For):
                _check_name(st.var, st.span)
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
        _check_name(name, t.span)
        if isinstance(value, NewLayer) and (name in MODULE_ATTRS or name.startswith("_")):
            raise SpecError(
                f"a layer cannot be named `{name}`: torch modules already use that name", t.span, "choose another name"
            )
        if t.index is not None:
            idx = self.static(self.eval(t.index), t.index.span, "an index")
            if not (
                isinstance(idx, int)
                and not isinstance(idx, bool)
                and 0 <= idx < limits.MAX_LIST
                or isinstance(idx, str)
                and idx.isidentifier()
                and idx.isascii()
            ):
                raise ShapeError(
                    f"an item key is an integer from 0 to {limits.MAX_LIST - 1} or a name, got {idx!r}", t.index.span
                )
            full = f"{name}.{idx}"
            coll = next((s[name] for s in reversed(self.scopes) if name in s), None)
            if not isinstance(coll, Many):
                coll = Many({}, name)
                self.bind(name, coll)
            if any(isinstance(k, str) != isinstance(idx, str) for k in coll.items):
                raise ShapeError(
                    f"`{name}` mixes integer and name keys",
                    t.index.span,
                    "a list takes u[0], u[1]...; a group of layers takes names",
                )
            coll.items[idx] = self.declare(full, value, t.span)
            return
        self.bind(name, self.declare(name, value, t.span))

    def declare(self, name, value, span):
        if isinstance(value, NewLayer):
            if len(self.scopes) > 1:
                raise SpecError("declare layers at the top level of g or f, not inside a function", span)
            if name in self.graph.layers:
                raise SpecError(
                    f"layer `{name}` is declared twice", span, "use the first one again to share its weights"
                )
            self.graph.layers[name] = LayerDecl(value.kind, value.args, value.span, value.exprs)
            if value.kind == "param":
                return Tensor(
                    self.graph.add(
                        "param", [], {"layer": name}, value.args["shape"], span=span, name=name.replace(".", "_")
                    )
                )
            return LayerRef(name)
        if isinstance(value, Tensor):
            node = self.graph.node(value.nid)
            if not node["name"] and len(self.scopes) == 1:
                node["name"] = name.replace(".", "_")
        return value


def _check_name(name: str, span) -> None:
    """Names become Python identifiers in generated code."""
    if keyword.iskeyword(name):
        raise SpecError(f"`{name}` is a Python keyword and cannot name a value", span, "choose another name")


def _arg_span(opdef, arg, exprs):
    if arg is None or not exprs:
        return None
    names = list(opdef.signature.parameters)
    if arg in names and names.index(arg) < len(exprs):
        return exprs[names.index(arg)].span
    return None


def _number(e):
    """A sympy result as the evaluator keeps it: a Python int or float where it is one."""
    e = norm(e)
    if isinstance(e, sympy.Basic) and not is_symbolic(e):
        return float(e)
    return e


def _scalar_type(v):
    return "int" if isinstance(v, int) and not isinstance(v, bool) else "float"


def input_shape(spec: Spec, params: dict, name: str) -> tuple:
    """Declared shape of an input: parameters become numbers, other names symbols, `*S` a pack."""
    dims = []
    packs = 0
    for i, d in enumerate(spec.inputs[name]):
        span = spec.span("inputs", name, i)
        if isinstance(d, int) and not isinstance(d, bool):
            if not 1 <= d <= limits.MAX_INT:
                raise SpecError(f"dimension {d} of input `{name}` must be a positive size", span)
            dims.append(d)
        elif isinstance(d, str) and d.startswith("*") and d[1:].isidentifier():
            packs += 1
            dims.append(Pack(d[1:]))
        elif isinstance(d, str) and d.isidentifier():
            v = params[d] if d in params else sym(d)
            if d in params and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise SpecError(f"dimension `{d}` of input `{name}` is {v!r}, not a positive size", span)
            dims.append(v)
        elif isinstance(d, str):
            src = Source(spec.path, d, span.line - 1 if span else 0, (span.col - 1) if span else 0, spec.lines)
            expr = parse_expression(src)
            syms = {}

            def get(n):
                return params[n] if n in params else syms.setdefault(n, sym(n))

            names = _names(expr)
            multiple = multiple_of(expr, params)
            if multiple is not None:  # "k * n": a multiple of the parameter expression k, n a symbol
                factor, symbol = multiple
                try:
                    k = eval_static(factor, params.__getitem__, set(_names(factor)))
                except (TypeError, ValueError, AttributeError, ArithmeticError) as err:
                    raise SpecError(f"bad dimension {d!r} in input `{name}` ({err})", span) from None
                if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limits.MAX_INT:
                    raise SpecError(
                        f"dimension {d!r} of input `{name}`: the factor is {k!r}, not a positive size", span
                    )
                dims.append(k * sym(symbol) if k > 1 else sym(symbol))
                continue
            try:
                v = norm(eval_static(expr, get, set(names)))
            except (TypeError, ValueError, AttributeError, ArithmeticError, sympy.SympifyError) as err:
                raise SpecError(f"bad dimension {d!r} in input `{name}` ({err})", span) from None
            if not (
                isinstance(v, int)
                and 1 <= v <= limits.MAX_INT
                or isinstance(v, sympy.Expr)
                and v.free_symbols
                and not v.is_Float
            ):
                raise SpecError(f"dimension {d!r} of input `{name}` is {v!r}, not a positive size", span)
            dims.append(v)
        else:
            raise SpecError(f"bad dimension {d!r} in input `{name}`", span, "a dimension is a name, a number or *S")
        if packs > 1:
            raise SpecError(f"input `{name}` has more than one variadic part", span)
    return tuple(dims)


def multiple_of(expr, params):
    """(factor, symbol) of a declared size `k * n` or `n * k`, k a parameter expression, n a symbol; else None."""
    if not (isinstance(expr, S.BinOp) and expr.op == "mul"):
        return None
    for sym_side, factor in ((expr.right, expr.left), (expr.left, expr.right)):
        if (
            isinstance(sym_side, S.Var)
            and sym_side.name not in params
            and sym_side.name not in ("true", "false", "pi")
            and all(n in params for n in _names(factor))
        ):
            return factor, sym_side.name
    return None


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
    # divisibility the program establishes (rearrange splitting H into (h p)): sizes unify under it
    with assuming(fe.graph.meta.setdefault("divisible", [])):
        return _build(fe, spec, params)


def _build(fe, spec, params) -> Graph:
    for name in spec.inputs:
        shape = input_shape(spec, params, name)
        nid = fe.graph.add("input", [], {"name": name}, shape, span=spec.span("inputs", name, "@key"), name=name)
        fe.graph.inputs.append((name, nid))
        fe.bind(name, Tensor(nid))
    for src in (spec.g, spec.f):
        if src is not None:
            fe.run(parse_program(src))
    fe.graph.meta["fixed"] = sorted(fe.fixed)
    fe.graph.meta["input_dims"] = {name: list(dims) for name, dims in spec.inputs.items()}  # run-time checks
    # the tensor each top-level name holds at the end: what a spec's `maps:` refers to
    fe.graph.meta["values"] = {k: v.nid for k, v in fe.scopes[0].items() if isinstance(v, Tensor)}
    for name in spec.outputs:
        span = spec.span("outputs")
        v = fe.scopes[0].get(name)
        if v is None:
            raise NameError_(
                f"output `{name}` is never assigned", span, did_you_mean(name, fe.scopes[0]) or "assign it in `f`"
            )
        if not isinstance(v, Tensor):
            raise ShapeError(f"output `{name}` is not a tensor", span)
        fe.graph.outputs.append((name, v.nid))
    return fe.graph
