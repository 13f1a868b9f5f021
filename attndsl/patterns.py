"""Rearrange patterns, in the spirit of einops: "b c (g d) h w -> b g d (h w)".

Each side is a list of axes; `(a b)` groups axes into one; `...` stands for
any run of axes (the variadic spatial part); `1` is a unit axis. Sizes that a
pattern cannot infer are given as keywords. `parse` is shared by the shape
rule (`infer`, no torch) and the runtime (`attndsl.runtime.rearrange`).
"""

from __future__ import annotations

from functools import lru_cache

import sympy

from .runtime import parse_pattern
from .shapes import dim_eq, divisible, norm, numel, split_pack


def _names(item):
    return (item,) if isinstance(item, str) else item


@lru_cache(maxsize=256)
def parse(pattern: str):
    """(left, right) items of a pattern, checked; the runtime shares the parser."""
    if pattern.count("->") != 1:
        raise ValueError("a pattern needs exactly one `->`")
    left, right = parse_pattern(pattern)
    for item in left + right:
        for n in _names(item):
            if not (n.isidentifier() or n in ("1", "...")):
                what = "only the unit axis `1` may be written as a number" if n.isdigit() else "unexpected"
                raise ValueError(f"{what}: `{n}` in pattern")
    if any(isinstance(i, tuple) and "..." in i for i in left):
        raise ValueError("`...` cannot be grouped on the left side")
    names_l = [a for i in left for a in _names(i) if a != "1"]
    names_r = [a for i in right for a in _names(i) if a != "1"]
    for side, names in (("left", names_l), ("right", names_r)):
        dup = {a for a in names if names.count(a) > 1}
        if dup:
            raise ValueError(f"axis `{sorted(dup)[0]}` appears twice on the {side} side")
    if set(names_l) != set(names_r):
        diff = sorted(set(names_l) ^ set(names_r))
        raise ValueError(f"axis `{diff[0]}` appears on one side only")
    return left, right


def infer(pattern: str, shape, sizes: dict):
    """Result shape of rearranging `shape` by `pattern`."""
    left, right = parse(pattern)
    pre, pack, suf = split_pack(shape)
    if "..." in left:
        idx = left.index("...")
        n_fixed = len(left) - 1
        if pack is not None:
            if len(pre) != idx or len(suf) != n_fixed - idx:
                raise ValueError(f"pattern `{pattern}` does not line up with the variadic shape")
            ell = (pack,)
        else:
            if len(shape) < n_fixed:
                raise ValueError(f"pattern `{pattern}` needs at least {n_fixed} axes, got {len(shape)}")
            ell = tuple(shape[idx : idx + len(shape) - n_fixed])
        dims = list(shape[:idx]) + [ell] + list(shape[idx + len(ell) :])
    else:
        if pack is not None:
            raise ValueError("a variadic shape needs `...` in the pattern")
        if len(left) != len(shape):
            raise ValueError(f"pattern `{pattern}` has {len(left)} axes on the left, the input has {len(shape)}")
        dims = list(shape)
    known = dict(sizes)
    for item, d in zip(left, dims):
        if item == "...":
            known["..."] = d
            continue
        names = [a for a in _names(item) if a != "1"]
        unknown = [a for a in names if a not in known]
        prod = sympy.Integer(1)
        for a in names:
            if a in known:
                prod *= sympy.sympify(known[a])
        if len(unknown) > 1:
            raise ValueError(
                f"cannot infer sizes of {', '.join(unknown)} in `({' '.join(names)})`; give them as keywords"
            )
        if unknown:
            q = sympy.sympify(d) / prod
            if q.is_Rational and not q.is_Integer:
                raise ValueError(f"size {d} is not divisible by {prod}")
            if not q.is_integer and prod.is_Integer:  # the run-time reshape checks prod | d: shapes may rely on it
                divisible(d, prod)
            known[unknown[0]] = norm(q)
        elif not dim_eq(d, prod):
            raise ValueError(f"axis `{' '.join(_names(item))}` has size {prod}, the input has {d}")
    out = []
    for item in right:
        if item == "...":
            out.extend(known["..."])
            continue
        parts = [numel(known["..."]) if a == "..." else known[a] for a in _names(item) if a != "1"]
        out.append(norm(sympy.prod([sympy.sympify(p) for p in parts]) if parts else 1))
    return tuple(out), (left, right)
