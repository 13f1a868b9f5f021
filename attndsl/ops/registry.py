"""The op registry: what an op is, the tables of ops and layers, and the argument helpers every family uses.

An op is one entry: a shape rule registered with `@op` (its signature is the op's signature, its
docstring the op's doc), followed in the same file by its lowering, registered with `@lowering`.
The shape rule takes tensor operands as `T` (shape and span) and static arguments as Python values
and returns an `Out` (operand list, normalised attributes, result shape). The lowering takes the
lowering builder, the IR node and its lowered inputs and returns the fx value (see lowering.py).
Entry points: `OPS`, `LAYERS`, `op`, `lowering`, `layer`.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import sympy

from ..limits import MAX_LOOP_TRIPS, LimitExceeded
from ..shapes import Pack, fmt_shape, is_int, is_symbolic, norm, split_pack, sym


@dataclass
class T:
    """A tensor operand during shape inference."""

    nid: int
    shape: tuple
    span: object = None


@dataclass
class Out:
    inputs: list
    shape: tuple
    attrs: dict = field(default_factory=dict)
    n_outputs: int = 0  # > 0: a tuple of that many tensors, shapes in `shapes`
    shapes: list = field(default_factory=list)
    dtype: str = "float"


class OpError(Exception):
    """A shape or argument problem inside an op; the frontend adds the span."""

    def __init__(self, message: str, arg: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.arg, self.hint = arg, hint


@dataclass
class OpDef:
    name: str
    fn: object  # the shape rule
    doc: str  # the docstring's first paragraph, or the name's own line where ops share a rule
    pure: bool = True  # False: never merged by CSE (random, or updates state)
    signature: object = None
    family: str = ""  # the file that defines it (`attndsl ops` and the docs group by it)
    lower: object = None  # (builder, IR node, lowered inputs) -> fx value; set by `@lowering`
    buffer: tuple | None = None  # constant ops: (runtime function, attribute names) that build the buffer
    tensors: frozenset = frozenset()  # arguments that take tensors although their name is not in TENSOR_ARGS
    static: frozenset = frozenset()  # arguments that are static although their name is in TENSOR_ARGS
    runtime: frozenset = frozenset()  # static arguments that also take run-time sizes (`H - 1`: a sympy expression)


OPS: dict[str, OpDef] = {}
LAYERS: dict[str, OpDef] = {}


def first_paragraph(doc: str | None) -> str:
    """A docstring's first paragraph as one line."""
    return " ".join(inspect.cleandoc(doc or "").split("\n\n")[0].split())


def register(table, name, fn, pure=True, doc=None, buffer=None, tensors=(), static=(), runtime=()):
    """Add `name` to `table` with shape rule `fn`; `doc` replaces the docstring's line for this name."""
    if name in table:
        raise ValueError(f"op `{name}` is registered twice")
    table[name] = OpDef(
        name,
        fn,
        doc or first_paragraph(fn.__doc__),
        pure,
        inspect.signature(fn),
        fn.__module__.rpartition(".")[2],
        buffer=buffer,
        tensors=frozenset(tensors),
        static=frozenset(static),
        runtime=frozenset(runtime),
    )
    return fn


def op(*names, pure=True, docs=None, buffer=None, tensors=(), static=(), runtime=()):
    """Register the decorated shape rule as ops `names` (default: the function's name).

    `docs` maps a name to its own doc line where several names share one rule; `buffer` marks a
    constant op: (runtime function, the attribute names passed to it) builds its buffer; `tensors`
    and `static` name the arguments whose kind differs from what their name says (TENSOR_ARGS);
    `runtime` names the static arguments that also take run-time sizes (`narrow(x, 2, 1, H - 1)`):
    the shape rule gets them as sympy expressions (`need_size`), the lowering as fx values.
    """

    def deco(fn):
        for n in names or (fn.__name__.rstrip("_"),):
            register(OPS, n, fn, pure, (docs or {}).get(n), buffer, tensors, static, runtime)
        return fn

    return deco


def lowering(*names):
    """Register the decorated function as the lowering of ops `names`: (builder, node, inputs) -> fx value.

    It sits right under the ops' shape rule; the IR node's `attrs` are what the shape rule returned.
    """

    def deco(fn):
        for n in names:
            if n not in OPS:
                raise ValueError(f"lowering for unknown op `{n}`: register its shape rule first")
            if OPS[n].lower is not None:
                raise ValueError(f"op `{n}` has two lowerings")
            OPS[n].lower = fn
        return fn

    return deco


def layer(*names):
    def deco(fn):
        for n in names or (fn.__name__.rstrip("_"),):
            register(LAYERS, n, fn)
        return fn

    return deco


# --- argument helpers -----------------------------------------------------------------------


def need_tensor(x, arg="x"):
    if not isinstance(x, T):
        raise OpError(f"`{arg}` must be a tensor, got {type(x).__name__} {x!r}", arg)
    return x


def need_int(v, arg, minimum=None):
    if is_symbolic(v):
        raise OpError(
            f"`{arg}` must be known at compile time; `{v}` is a run-time size",
            arg,
            "this argument takes numbers and parameters",
        )
    if isinstance(v, bool) or not isinstance(v, int):
        raise OpError(f"`{arg}` must be an integer, got {v!r}", arg)
    if minimum is not None and v < minimum:
        raise OpError(f"`{arg}` must be at least {minimum}, got {v}", arg)
    return v


def need_size(v, arg, minimum=None):
    """An integer, or a run-time size (a sympy expression over the inputs' symbolic sizes) that is an integer."""
    if not is_symbolic(v):
        return need_int(v, arg, minimum)
    if not is_int(v):
        raise OpError(
            f"`{arg}` must be an integer, got `{v}`, which may not be one",
            arg,
            "divide sizes with `//` (floor) or split the axis with rearrange first",
        )
    if minimum is not None and (sympy.sympify(v) - minimum).is_negative:
        raise OpError(f"`{arg}` must be at least {minimum}, got `{v}`", arg)
    return v


def need_choice(v, choices, arg):
    if v not in choices:
        raise OpError(f"`{arg}` must be one of {', '.join(choices)}, got {v!r}", arg, "see `attndsl ops`")
    return v


def need_rank(x: T, ranks, what: str, arg="x"):
    pre, pack, suf = split_pack(x.shape)
    if pack is not None or len(x.shape) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise OpError(f"{what} needs a rank-{want} input, got {fmt_shape(x.shape)}", arg)


def resolve_axis(shape, d, arg="dim"):
    """Normalise an axis reference.

    An int (negative counts from the end) or the name of a symbolic size
    (`H`, `T`...) that labels exactly one axis. In a shape with a pack, prefix
    axes are >= 0 and suffix axes < 0; a pack-free shape gives ints >= 0.
    """
    pre, pack, suf = split_pack(shape)
    if isinstance(d, str):
        hits = [i for i, s in enumerate(shape) if not isinstance(s, Pack) and str(s) == d]
        if len(hits) != 1:
            raise OpError(
                f"axis `{d}` {'is ambiguous' if hits else 'is not'} in shape {fmt_shape(shape)}",
                arg,
                "name an axis by its symbolic size, or use an integer",
            )
        d = hits[0]
    if isinstance(d, bool) or not isinstance(d, int):
        raise OpError(f"`{arg}` must be an axis (an integer or a size name), got {d!r}", arg)
    if pack is None:
        r = len(shape)
        if not -r <= d < r:
            raise OpError(f"axis {d} is out of range for shape {fmt_shape(shape)}", arg)
        return d % r
    if 0 <= d < len(pre):
        return d
    if -len(suf) <= d < 0:
        return d
    if d >= 0 and d > len(pre) and suf:
        idx = d - len(pre) - 1
        if idx < len(suf):
            raise OpError(f"axis {d} lies after the variadic part of {fmt_shape(shape)}; count it from the end", arg)
    raise OpError(f"axis {d} is not a fixed axis of {fmt_shape(shape)}", arg, "use `spatial` for the variadic axes")


def _pack_axes(pre, suf, start=0):
    """Axis refs of a variadic shape from prefix axis `start` on: prefix ints, "S", negative suffix ints."""
    return list(range(start, len(pre))) + ["S"] + [-i for i in range(len(suf), 0, -1)]


def resolve_axes(shape, dims, arg="dims"):
    """A list of axes; `spatial` selects every axis after channels, the pack's name its variadic run."""
    pre, pack, suf = split_pack(shape)
    if dims is None:
        return tuple(range(len(shape))) if pack is None else tuple(_pack_axes(pre, suf))
    out = []
    for d in list(dims) if isinstance(dims, (list, tuple)) else [dims]:
        if pack is not None and d == pack.name:
            out.append("S")
        elif d == "spatial" and pack is not None:
            out += _pack_axes(pre, suf, start=2)
        elif d == "spatial":
            if len(shape) < 3:
                raise OpError(f"`spatial` needs a [B, C, ...] input with spatial axes, got {fmt_shape(shape)}", arg)
            out += list(range(2, len(shape)))
        else:
            out.append(resolve_axis(shape, d, arg))
    if len(set(out)) != len(out):
        raise OpError(f"axis listed twice in {dims!r}", arg)
    return tuple(out)


def drop_axes(shape, axes, keepdim):
    pre, pack, suf = split_pack(shape)
    out = []
    for i, s in enumerate(shape):
        if isinstance(s, Pack):
            key = "S"
        elif pack is not None and i > len(pre):
            key = i - len(shape)
        else:
            key = i
        if key in axes:
            if keepdim:
                out.append(Pack(s.name, True) if isinstance(s, Pack) else 1)
        else:
            out.append(s)
    return tuple(out)


def axis_size(shape, a):
    return shape[a] if isinstance(a, int) else None


def conv_out(size, k, s, p, d):
    return norm(sympy.floor((sympy.sympify(size) + 2 * p - d * (k - 1) - 1) / s) + 1)


def sizes_n(v, n, arg):
    """n output sizes: positive ints, or run-time sizes (`size=[H, W]`, `[H // 2, W]`) read from the inputs."""
    out = tuple_n(v, n, arg)
    for d in out:
        if isinstance(d, str):
            if not d.isidentifier():
                raise OpError(f"`{arg}` takes sizes: integers or symbolic sizes such as H, got {d!r}", arg)
        else:
            need_size(d, arg, 1)
    return tuple(sym(d) if isinstance(d, str) else norm(d) for d in out)


def tuple_n(v, n, arg):
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise OpError(f"`{arg}` needs {n} values, got {len(v)}", arg)
        return tuple(v)
    return (v,) * n


# --- static values: builtins of parameter expressions, and which op arguments take tensors ----------


def _range(*args):
    """range() as a list, refused before it is built if it is longer than a loop may run."""
    if not all(isinstance(a, int) for a in args):
        raise TypeError("range() takes integers")
    r = range(*args)
    if len(r) > MAX_LOOP_TRIPS:
        raise LimitExceeded(f"range of {len(r)} steps is over the limit of {MAX_LOOP_TRIPS}")
    return list(r)


def static_builtins():
    """Functions of static values (parameter expressions, layer arguments)."""

    def odd(v):
        return v if int(v) % 2 else int(v) + 1

    return {
        "max": max,
        "min": min,
        "abs": abs,
        "int": int,
        "float": float,
        "round": round,
        "floor": math.floor,
        "ceil": math.ceil,
        "log": math.log,
        "log2": math.log2,
        "sqrt": math.sqrt,
        "odd": odd,
        "range": _range,
        "len": len,
    }


# arguments that take tensors, by name; every other argument must be known at compile time. An op
# whose argument breaks the convention says so in its entry: @op(..., tensors={"value"}) or static={"p"}
TENSOR_ARGS = {
    "x",
    "a",
    "b",
    "cond",
    "like",
    "likes",
    "xs",
    "index",
    "weight",
    "bias",
    "theta",
    "grid",
    "p",
    "u",
    "l",
    "q",
    "k",
    "v",
    "buffer",
    "s",
    "mask",
}
LIST_ARGS = ("xs", "likes")  # a list of tensors


def tensor_args(name: str) -> set:
    """The arguments of op `name` that take tensors (or, for arithmetic, numbers)."""
    d = OPS[name]
    return ((set(d.signature.parameters) & TENSOR_ARGS) | d.tensors) - d.static
