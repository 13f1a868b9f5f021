"""Rearrange patterns, in the spirit of einops: "b c (g d) h w -> b g d (h w)".

Each side is a list of axes; `(a b)` groups axes into one; `...` stands for
any run of axes (the variadic spatial part); `1` is a unit axis. Sizes that a
pattern cannot infer are given as keywords. `parse` is shared by the shape
rule (`infer`, no torch) and the runtime (`attndsl.runtime.rearrange`).
"""
from __future__ import annotations

import re
from functools import lru_cache

import sympy

from .shapes import Pack, norm, numel, split_pack

_TOKEN = re.compile(r"\(|\)|\.\.\.|[A-Za-z_][A-Za-z_0-9]*|\d+|\S")


def _side(text: str):
    groups, cur = [], None
    for tok in _TOKEN.findall(text):
        if tok == "(":
            if cur is not None:
                raise ValueError("nested parentheses in pattern")
            cur = []
        elif tok == ")":
            if cur is None:
                raise ValueError("unbalanced `)` in pattern")
            groups.append(tuple(cur))
            cur = None
        elif tok == "..." or tok.isidentifier() or tok.isdigit():
            if tok.isdigit() and tok != "1":
                raise ValueError(f"only the unit axis `1` may be written as a number, got `{tok}`")
            (cur if cur is not None else groups).append(tok if cur is not None else (tok,))
        else:
            raise ValueError(f"unexpected `{tok}` in pattern")
    if cur is not None:
        raise ValueError("unbalanced `(` in pattern")
    return tuple(groups)


@lru_cache(maxsize=256)
def parse(pattern: str):
    """(left groups, right groups), each group a tuple of axis names."""
    if pattern.count("->") != 1:
        raise ValueError("a pattern needs exactly one `->`")
    left, right = (_side(s) for s in pattern.split("->"))
    names_l = [a for g in left for a in g if a != "1"]
    names_r = [a for g in right for a in g if a != "1"]
    for side, names in (("left", names_l), ("right", names_r)):
        dup = {a for a in names if names.count(a) > 1}
        if dup:
            raise ValueError(f"axis `{sorted(dup)[0]}` appears twice on the {side} side")
    if set(names_l) != set(names_r):
        diff = sorted(set(names_l) ^ set(names_r))
        raise ValueError(f"axis `{diff[0]}` appears on one side only")
    for g in left + right:
        if "..." in g and len(g) > 1 and g != ("...",):
            pass
    return left, right


def infer(pattern: str, shape, sizes: dict):
    """Result shape of rearranging `shape` by `pattern`."""
    left, right = parse(pattern)
    pre, pack, suf = split_pack(shape)
    has_ell = any("..." in g for g in left)
    if has_ell:
        idx = next(i for i, g in enumerate(left) if "..." in g)
        if left[idx] != ("...",):
            raise ValueError("`...` cannot be grouped on the left side")
        n_fixed = len(left) - 1
        if pack is not None:
            if len(pre) != idx or len(suf) != n_fixed - idx:
                raise ValueError(f"pattern `{pattern}` does not line up with the variadic shape")
            ell = (pack,)
        else:
            if len(shape) < n_fixed:
                raise ValueError(f"pattern `{pattern}` needs at least {n_fixed} axes, got {len(shape)}")
            ell = tuple(shape[idx: idx + len(shape) - n_fixed])
        dims = list(shape[:idx]) + [ell] + list(shape[idx + len(ell):])
    else:
        if pack is not None:
            raise ValueError("a variadic shape needs `...` in the pattern")
        if len(left) != len(shape):
            raise ValueError(f"pattern `{pattern}` has {len(left)} axes on the left, the input has {len(shape)}")
        dims = list(shape)
    known = {k: v for k, v in sizes.items()}
    for g, d in zip(left, dims):
        if g == ("...",):
            known["..."] = d
            continue
        unknown = [a for a in g if a != "1" and a not in known]
        prod = sympy.Integer(1)
        for a in g:
            if a != "1" and a in known:
                prod *= sympy.sympify(known[a])
        if len(unknown) > 1:
            raise ValueError(f"cannot infer sizes of {', '.join(unknown)} in `({' '.join(g)})`; give them as keywords")
        if unknown:
            q = sympy.sympify(d) / prod
            if q.is_Rational and not q.is_Integer:
                raise ValueError(f"size {d} is not divisible by {prod}")
            known[unknown[0]] = norm(q)
        elif sympy.simplify(sympy.sympify(d) - prod) != 0:
            raise ValueError(f"axis `({' '.join(g)})` has size {prod}, the input has {d}")
    out = []
    for g in right:
        if g == ("...",):
            out.extend(known["..."])
            continue
        if "..." in g:
            parts = [known[a] if a != "..." else numel(known["..."]) for a in g if a != "1"]
        else:
            parts = [known[a] for a in g if a != "1"]
        out.append(norm(sympy.prod([sympy.sympify(p) for p in parts]) if parts else 1))
    return tuple(out), (left, right)
