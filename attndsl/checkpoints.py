"""Weights from other implementations, by the mappings specs declare in their `convert` section.

A spec says, per source (`timm`), which class it converts from and how (see docs/language.md):
attributes the source module must have (`requires`), block parameters read off the source's
tensor shapes or its input shape (`params`), fixed parameter values that put the block in the
source's form (`set`), and block key <- source key (`keys`; a tensor is reshaped to the
block's shape when the element counts agree: a 1x1 conv's [O, I, 1, 1] into a linear's [O, I]).
Several variants may be listed; the first whose keys and requirements fit is used. No Python
is written per mechanism. Entry points: `convert_state_dict`, `from_module`, `replace_modules`.
"""

from __future__ import annotations

import re

import yaml
from torch import nn

from .errors import AttnDSLError, SpecError
from .pipeline import load

FIELDS = ("module", "requires", "params", "set", "keys")
_SHAPE_REF = re.compile(r"^(?P<key>[A-Za-z_][\w.]*)\[(?P<dim>-?\d+)\]$")
_ATTR_REF = re.compile(r"^attr:(?P<path>[A-Za-z_][\w.]*)(?:\[(?P<index>\d+)\])?$")


def conversions(spec, source: str = "timm") -> list[dict]:
    """The spec's declared conversions from `source`, checked."""
    s = load(spec)
    data = yaml.safe_load("\n".join(s.lines)) or {}
    section = data.get("convert") or {}

    def err(msg, *path, hint=None):
        return SpecError(msg, s.span("convert", *path) or s.span("convert"), hint)

    if not isinstance(section, dict):
        raise err("`convert` maps a source name (timm) to its conversion", hint="e.g. convert: {timm: {keys: ...}}")
    if source not in section:
        raise AttnDSLError(
            f"`{s.name}` declares no conversion from {source}", hint=f"it declares: {', '.join(section) or 'none'}"
        )
    variants = section[source]
    variants = variants if isinstance(variants, list) else [variants]
    for i, v in enumerate(variants):
        where = (source, i) if isinstance(section[source], list) else (source,)
        if not isinstance(v, dict):
            raise err("a conversion is a mapping with module, keys, ...", *where)
        for k in v:
            if k not in FIELDS:
                raise err(f"unknown field `{k}` in a conversion", *where, hint=f"fields: {', '.join(FIELDS)}")
        if not isinstance(v.get("module"), str) or not isinstance(v.get("keys"), dict):
            raise err(
                "a conversion needs `module` (the source class name) and `keys` "
                "(block key: source key; {} when neither has weights)",
                *where,
            )
        for k in ("requires", "params", "set"):
            if not isinstance(v.get(k, {}), dict):
                raise err(f"`{k}` must be a mapping", *where, k)
        for name, ref in v.get("params", {}).items():
            if name not in s.params:
                raise err(f"`{s.name}` has no parameter `{name}`", *where, "params", name)
            if not isinstance(ref, str) or not all(
                _SHAPE_REF.match(r.strip()) or _ATTR_REF.match(r.strip()) for r in ref.split("//")
            ):
                raise err(
                    f"parameter `{name}` must be read off a shape (`key[dim]`, `input[dim]`) or the "
                    "module (`attr:path`, `attr:path[i]`), or be the floor quotient `a // b` of two of those",
                    *where,
                    "params",
                    name,
                )
        for name in v.get("set", {}):
            if name not in s.params:
                raise err(f"`{s.name}` has no parameter `{name}`", *where, "set", name)
    return variants


def _shape_value(ref: str, state: dict, input_shape, module=None):
    if "//" in ref:
        num, den = (_shape_value(r.strip(), state, input_shape, module) for r in ref.split("//", 1))
        return num // den
    a = _ATTR_REF.match(ref)
    if a:
        if module is None:
            raise AttnDSLError(f"this conversion reads `{ref}` off the source module", hint="convert from the module")
        v = _attr(module, a["path"])
        if v is _MISSING:
            raise AttnDSLError(f"the source module has no `{a['path']}`")
        return v[int(a["index"])] if a["index"] is not None else v
    m = _SHAPE_REF.match(ref)
    key, dim = m["key"], int(m["dim"])
    if key == "input":
        if input_shape is None:
            raise AttnDSLError(f"this conversion reads `{ref}` off the module's input", hint="pass input_shape=")
        return int(input_shape[dim])
    return int(state[key].shape[dim])


def _attr(module, path):
    cur = module
    for part in path.split("."):
        if not hasattr(cur, part):
            return _MISSING
        cur = getattr(cur, part)
    return cur


_MISSING = object()


def _fits(v: dict, state: dict, module) -> str | None:
    """Why a variant does not fit, or None."""
    want = {k for k in v["keys"].values() if k is not None}  # null: a constant of the block's own
    have = set(state)
    if want != have:
        parts = [
            f"missing {sorted(want - have)}" if want - have else "",
            f"extra {sorted(have - want)}" if have - want else "",
        ]
        return "keys differ: " + "; ".join(p for p in parts if p)
    if module is None:
        return None
    for path, expect in (v.get("requires") or {}).items():
        got = _attr(module, path)
        if isinstance(got, nn.Module):
            got = type(got).__name__
        elif isinstance(got, tuple):  # YAML writes (3, 3) as [3, 3]
            got = list(got)
        if got is _MISSING or (
            got != expect
            and not (
                isinstance(got, float)
                and isinstance(expect, (int, float))
                and abs(got - expect) <= 1e-12 * max(1.0, abs(expect))
            )
        ):
            return f"`{path}` is {got if got is not _MISSING else 'absent'}, the conversion needs {expect}"
    return None


def convert_state_dict(
    spec, state: dict, source: str = "timm", *, module=None, input_shape=None, **params
) -> tuple[dict, dict]:
    """(block parameters, block state dict) from a source state dict laid out as `source` does."""
    s = load(spec)
    reasons = []
    for v in conversions(spec, source):
        why = _fits(v, state, module)
        if why:
            reasons.append(why)
            continue
        values = {k: _shape_value(ref, state, input_shape, module) for k, ref in (v.get("params") or {}).items()}
        values.update(v.get("set") or {})
        values.update(params)
        return values, v["keys"]
    target = type(module).__name__ if module else "state dict"
    raise AttnDSLError(f"no {source} conversion of `{s.name}` fits this {target}", hint="; ".join(reasons))


def _load_into(block: nn.Module, keys: dict, state: dict, name: str) -> None:
    target = block.state_dict()
    if set(keys) != set(target):
        raise AttnDSLError(
            f"the conversion of `{name}` names block keys {sorted(set(keys) ^ set(target))} "
            "that differ from the block's",
            hint="fix the spec's convert.keys",
        )
    out = {}
    for bkey, skey in keys.items():
        if skey is None:  # a constant of the block (an index buffer) the source does not store
            out[bkey] = target[bkey]
            continue
        t, want = state[skey], target[bkey].shape
        if t.numel() != target[bkey].numel():
            raise AttnDSLError(f"`{skey}` {list(t.shape)} does not fit `{bkey}` {list(want)} of `{name}`")
        out[bkey] = t.reshape(want)
    block.load_state_dict(out)


def from_module(module: nn.Module, spec=None, source: str = "timm", input_shape=None, **params) -> nn.Module:
    """An attndsl block that computes what `module` (a `source` implementation) computes, with its weights."""
    from .hosts import layer

    state = module.state_dict()
    candidates = [spec] if spec is not None else specs_for(type(module).__name__, source)
    if not candidates:
        raise AttnDSLError(f"no spec declares a {source} conversion from {type(module).__name__}")
    reasons = []
    for sp in candidates:
        try:
            values, keys = convert_state_dict(sp, state, source, module=module, input_shape=input_shape, **params)
        except AttnDSLError as e:
            reasons.append(e.message + (f" ({e.hint})" if e.hint else ""))
            continue
        block = layer(sp)(**values)
        ref = next(iter(state.values()), None)
        if ref is not None:
            block.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
        _load_into(block, keys, state, load(sp).name)
        block.train(module.training)
        return block
    raise AttnDSLError(f"cannot convert {type(module).__name__}: " + "; ".join(reasons))


def specs_for(class_name: str, source: str = "timm") -> list[str]:
    """Names of the specs that declare a conversion from the class `class_name` of `source`."""
    from .registry import all_specs

    out = []
    for name, path in all_specs().items():
        if "convert:" not in path.read_text():
            continue
        try:
            variants = conversions(path, source)
        except AttnDSLError:
            continue
        if any(v["module"] == class_name for v in variants):
            out.append(name)
    return out


def replace_modules(model: nn.Module, source: str = "timm", classes=None, input_shape=None) -> list[str]:
    """Replace every module of `model` whose class a spec converts from (or those of `classes`)
    by the attndsl block with its weights; returns the replaced paths. Shapes read off the
    modules' inputs come from one dry run on the meta device."""
    from .hosts import dry_run_shapes

    index: dict = {}
    for _, m in model.named_modules():
        cname = type(m).__name__
        if cname not in index and (classes is None or cname in classes):
            index[cname] = specs_for(cname, source)
    paths = [p for p, m in model.named_modules() if p and index.get(type(m).__name__)]
    if not paths:
        return []
    shapes = dry_run_shapes(model, paths, input_shape)
    done = []
    for p in paths:
        parent, _, leaf = p.rpartition(".")
        if any(p.startswith(d + ".") for d in done):  # inside a module already replaced
            continue
        block = from_module(model.get_submodule(p), source=source, input_shape=shapes[p][0])
        setattr(model.get_submodule(parent), leaf, block)
        done.append(p)
    return done
