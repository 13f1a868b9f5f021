"""Symbolic shapes.

A shape is a tuple of items: an `int`, a sympy expression over the symbolic
dims of the inputs (`B`, `H`, `W`...), or one `Pack`, a run of axes of unknown
count (the variadic spatial part `*S` that lets one spec serve 1-D, 2-D and 3-D
inputs). Entry points: `dim_eq`, `broadcast`, `split_pack`, `fmt_shape`.

Sizes also unify under the divisibility a graph has established: a rearrange
that splits `H` into `(h p)` with p = 4 checks 4 | H at run time, so within
`assuming(facts)` (the facts list of that graph, where `divisible` records
such splits) `H / 4` and `floor(H / 4)` are the same size. Without that
fact they stay different.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass

import sympy


@dataclass(frozen=True)
class Pack:
    """A run of axes whose count is known only at run time.

    `ones` packs are the same run with every axis of size 1 (what a reduction
    with keepdim, or `unsqueeze(..., like=x)`, leaves behind).
    """

    name: str
    ones: bool = False

    def __str__(self) -> str:
        return f"*{self.name}" + ("=1" if self.ones else "")

    @property
    def numel(self):
        """The product of the run's sizes, as a symbol."""
        return sympy.Integer(1) if self.ones else sympy.Symbol(f"prod_{self.name}", positive=True, integer=True)


def sym(name: str):
    return sympy.Symbol(name, positive=True, integer=True)


def norm(d):
    """Canonical form of a size: a Python int where it is one."""
    if isinstance(d, Pack):
        return d
    d = sympy.sympify(d)
    return int(d) if d.is_Integer else d


def is_symbolic(v) -> bool:
    """Whether v is a size known only at run time: a sympy expression over symbolic sizes."""
    return isinstance(v, sympy.Basic) and bool(getattr(v, "free_symbols", None))


# --- divisibility established by the program ----------------------------------------------------

_FACTS: contextvars.ContextVar = contextvars.ContextVar("attndsl_divisibility", default=None)


@contextlib.contextmanager
def assuming(facts: list):
    """Shape checks inside use (and `divisible` records into) the list `facts` of (symbol name, divisor)."""
    token = _FACTS.set(facts)
    try:
        yield facts
    finally:
        _FACTS.reset(token)


def divisible(d, k) -> None:
    """Record that size d is a multiple of the integer k (checked at run time by whoever records it)."""
    facts = _FACTS.get()
    d = sympy.sympify(d)
    if facts is None or not isinstance(d, sympy.Symbol) or not isinstance(k, (int, sympy.Integer)) or int(k) <= 1:
        return
    fact = (d.name, int(k))
    if fact not in facts:
        facts.append(fact)


def _under_facts(e):
    """e with every symbol the facts divide written as a multiple: H -> 4 * H_4 when 4 | H."""
    facts = _FACTS.get()
    if not facts:
        return None
    step: dict = {}
    for name, k in facts:
        step[name] = math.lcm(step.get(name, 1), k)
    subs = {
        s: step[s.name] * sympy.Dummy(f"{s.name}_{step[s.name]}", positive=True, integer=True)
        for s in e.free_symbols
        if s.name in step
    }
    return e.subs(subs) if subs else None


def dim_eq(a, b) -> bool:
    if isinstance(a, Pack) or isinstance(b, Pack):
        return a == b
    diff = sympy.simplify(sympy.sympify(a) - sympy.sympify(b))
    if diff == 0:
        return True
    under = _under_facts(diff)
    return under is not None and sympy.simplify(under) == 0


def is_int(e) -> bool:
    """Whether a size expression is an integer for every value of its symbols (under the facts in force)."""
    e = sympy.sympify(e)
    if e.is_integer:
        return True
    under = _under_facts(e)
    return under is not None and bool(sympy.simplify(under).is_integer)


def is_one(d) -> bool:
    return not isinstance(d, Pack) and norm(d) == 1


def split_pack(shape):
    """(prefix, pack or None, suffix)."""
    for i, d in enumerate(shape):
        if isinstance(d, Pack):
            return tuple(shape[:i]), d, tuple(shape[i + 1 :])
    return tuple(shape), None, ()


def _bcast_fixed(a, b):
    """numpy broadcasting of two pack-free shapes, or None."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if is_one(x):
            out.append(y)
        elif is_one(y) or dim_eq(x, y):
            out.append(x)
        else:
            return None
    return tuple(norm(d) for d in reversed(out))


def broadcast(a, b):
    """Broadcast two shapes, or None if they do not broadcast.

    Shapes with packs broadcast when their packs stand at the same place from
    the right and agree (a ones-pack broadcasts against any pack of that name).
    """
    pa, ka, sa = split_pack(a)
    pb, kb, sb = split_pack(b)
    if ka is None and kb is None:
        return _bcast_fixed(a, b)
    if ka is None or kb is None:
        fixed, packed = (a, b) if ka is None else (b, a)
        # a pack-free operand may only reach into the suffix (e.g. a scalar)
        pre, k, suf = split_pack(packed)
        if len(fixed) > len(suf):
            return None
        s = _bcast_fixed(suf, fixed)
        return None if s is None else pre + (k,) + s
    if ka.name != kb.name:
        return None
    k = ka if not ka.ones else kb
    pre, suf = _bcast_fixed(pa, pb), _bcast_fixed(sa, sb)
    if pre is None or suf is None or len(sa) != len(sb):
        return None
    return pre + (k,) + suf


def fmt_dim(d) -> str:
    return str(d).replace("prod_", "|").replace(" ", "") if not isinstance(d, Pack) else str(d)


def fmt_shape(shape) -> str:
    if shape is None:
        return "scalar"
    return "[" + ", ".join(fmt_dim(d) for d in shape) + "]"


def numel(shape):
    n = sympy.Integer(1)
    for d in shape:
        n = n * (d.numel if isinstance(d, Pack) else sympy.sympify(d))
    return norm(n)
