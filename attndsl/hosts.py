"""attndsl blocks inside other people's models.

`layer(spec, **params)` is a class that timm and torchvision accept wherever they take an
attention-layer class (`timm.create_model("resnet50", block_args=dict(attn_layer=layer("cbam")))`):
channels positional, timm's keywords translated where the spec can express them and refused
with the reason where it cannot. `attach(model, spec, at=..., where=...)` puts blocks into a
built model at module paths, with sizes read off one dry run on the meta device, leaving
the host's parameters and state-dict keys as they were.
Entry points: `layer`, `attach`, `AttnLayer`.
"""

from __future__ import annotations

import copyreg
import os
import re

import torch
from torch import nn

from .errors import AttnDSLError, ParamError, did_you_mean
from .pipeline import build, load
from .spec import check_range, coerce

# --- layer: a class per (spec, fixed parameters) ----------------------------------------------------


class _LayerType(type):
    """The metaclass of layer classes: pickled as `layer(spec, **params)`, so a saved model loads
    in a process that never called `layer`."""


def _reduce_layer_type(cls):
    if cls.__dict__.get("spec_id") is None:  # AttnLayer itself, or a user's subclass
        return cls.__qualname__
    return _layer_class, (cls.spec_id, tuple(sorted(cls.fixed.items())))


copyreg.pickle(_LayerType, _reduce_layer_type)

_CLASSES: dict = {}
_FORWARDS: dict = {}


def _freeze(v):
    return tuple(_freeze(i) for i in v) if isinstance(v, (list, tuple)) else v


def _thaw(v):
    return [_thaw(i) for i in v] if isinstance(v, tuple) else v


class AttnLayer(nn.Module, metaclass=_LayerType):
    """An attndsl block as an ordinary nn.Module subclass.

    Its parameters, buffers and submodules are those of `attndsl.build(...)` under the same
    names (the state dict reads `fc1.weight`, not `block.fc1.weight`); forward runs the built
    graph's code on them. The code is compiled once per distinct parameter set and looked up
    by key, so instances deep-copy, pickle and move between devices like any module.
    """

    spec_id: str | None = None
    fixed: dict = {}

    def __init__(self, channels=None, **kwargs):
        super().__init__()
        params, device, dtype = translate(self.spec_id, {**self.fixed}, kwargs)
        if channels is not None:
            params["channels"] = channels
        gm = build(self.spec_id, **params)
        compiled = gm.meta["compiled"]
        self.params = dict(compiled.params)  # every parameter's value, defaults included
        self._key = (self.spec_id, tuple(sorted((k, _freeze(v)) for k, v in self.params.items())))
        _FORWARDS.setdefault(self._key, type(gm).forward)
        for name, mod in gm.named_children():
            self.add_module(name, mod)
        for name, p in gm.named_parameters(recurse=False):
            self.register_parameter(name, p)
        for name, b in gm.named_buffers(recurse=False):
            self.register_buffer(name, b, persistent=name not in gm._non_persistent_buffers_set)
        # parameters without a gradient in training: DDP needs find_unused_parameters=True for them
        self.unused_parameters = unused_parameters(compiled, self)
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    def forward(self, *inputs):
        fn = _FORWARDS.get(self._key)
        if fn is None:  # unpickled in a fresh process
            fn = _FORWARDS.setdefault(self._key, type(build(self.spec_id, **self.params)).forward)
        return fn(self, *inputs)

    def extra_repr(self) -> str:
        return f"spec={self.spec_id!r}, " + ", ".join(f"{k}={v!r}" for k, v in self.params.items())


def _layer_class(spec_id: str, fixed_items: tuple):
    key = (spec_id, fixed_items)
    cls = _CLASSES.get(key)
    if cls is None:
        fixed = {k: _thaw(v) for k, v in fixed_items}
        name = load(spec_id).name
        cname = "".join(p[:1].upper() + p[1:] for p in name.split("_")) + "Layer"
        cls = _LayerType(
            cname,
            (AttnLayer,),
            {
                "spec_id": spec_id,
                "fixed": fixed,
                "__module__": __name__,
                "__doc__": f"attndsl.layer({spec_id!r}, **{fixed!r})",
            },
        )
        _CLASSES[key] = cls
    return cls


def layer(spec, **params) -> type:
    """A module class for the spec with these parameters fixed: `cls(channels, **more)`.

    The class is cached, so `layer("cbam") is layer("cbam")`, and pickles by spec and parameters.
    timm's `attn_layer`, `se_layer` and the like take it in place of their own classes.
    """
    spec_id = spec.path if hasattr(spec, "path") else os.fspath(spec)
    s = load(spec_id)
    for k in params:
        if k not in s.params:
            raise ParamError(
                f"`{s.name}` has no parameter `{k}`",
                s.span("params"),
                did_you_mean(k, s.params) or f"parameters: {', '.join(s.params)}",
            )
    if "channels" not in s.params:
        raise AttnDSLError(
            f"`{s.name}` has no `channels` parameter, so it cannot be an attention layer class "
            "that hosts call with the channel count",
            hint="use attndsl.build for it",
        )
    for k, v in params.items():  # checked now, defaults resolved per instance
        check_range(s.params[k], coerce(s.params[k], v))
    return _layer_class(spec_id, tuple(sorted((k, _freeze(v)) for k, v in params.items())))


# What timm passes to attention layers, and how a spec can express it. The reduction ratio is
# a float in timm (1/16) and an int divisor in most specs (16); the hidden width is
# `rd_channels`; activation and gate classes map to a spec's `activation`/`gate` string choice.
_RATIO_PARAMS = ("reduction", "ratio")
_HIDDEN_PARAMS = ("hidden", "inter_channels")
_ACT_NAMES = {
    "ReLU": "relu",
    "SiLU": "silu",
    "Swish": "silu",
    "Hardswish": "hswish",
    "HardSwish": "hswish",
    "GELU": "gelu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Hardsigmoid": "hsigmoid",
    "HardSigmoid": "hsigmoid",
}


def _act_name(v):
    if isinstance(v, str):
        return {"swish": "silu", "hard_swish": "hswish", "hard_sigmoid": "hsigmoid"}.get(v.lower(), v.lower())
    name = getattr(v, "__name__", None) or type(v).__name__
    return _ACT_NAMES.get(name, name.lower())


def translate(spec_id, params: dict, kwargs: dict):
    """Spec parameters, device and dtype from a host's keywords (a spec's own names pass as they are)."""
    s = load(spec_id)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)

    def refuse(k, why):
        raise ParamError(
            f"`{s.name}` cannot take timm's `{k}`: {why}", s.span("params"), f"its parameters: {', '.join(s.params)}"
        )

    for k, v in kwargs.items():
        if k in s.params:
            params[k] = v
        elif k == "rd_ratio":
            target = next((p for p in _RATIO_PARAMS if p in s.params), None)
            if target is None:
                refuse(k, "the spec has no reduction ratio")
            if s.params[target].type == "float":
                params[target] = float(v)
            elif abs(1 / v - round(1 / v)) < 1e-9:
                params[target] = round(1 / v)
            else:
                refuse(k, f"its `{target}` is an integer divisor and 1/{v} is not an integer")
        elif k == "rd_channels":
            target = next((p for p in _HIDDEN_PARAMS if p in s.params), None)
            if v is None:
                continue
            if target is None:
                refuse(k, "the spec's hidden width is not a parameter")
            params[target] = v
        elif k in ("act_layer", "gate_layer"):
            if v is None:  # timm's "the module's default"
                continue
            target = "activation" if k == "act_layer" else "gate"
            if target not in s.params:
                refuse(k, f"the spec's {'activation' if k == 'act_layer' else 'gate'} is fixed by the spec")
            params[target] = _act_name(v)
        elif k == "rd_divisor":
            if "divisor" not in s.params:
                refuse(k, "the spec does not round its hidden width to a multiple")
            params["divisor"] = v
        else:
            refuse(k, "no such parameter")
    return params, device, dtype


def unused_parameters(compiled, module: nn.Module) -> list[str]:
    """Names of the module's learned parameters that get no gradient from the block's outputs in
    training: those of layers that only feed `detach` and other no-gradient ops, or only the
    eval-mode side of `if_training`, or nothing. A DistributedDataParallel host of such a block
    needs find_unused_parameters=True."""
    g = compiled.graph
    used = {
        g.node(nid)["attrs"]["layer"]
        for nid in g.order()
        if g.node(nid)["op"] in ("layer", "param") and _gradient_reaches(g, nid)
    }
    return [
        name
        for name, p in module.named_parameters()
        if p.requires_grad and not any(name == u or name.startswith(u + ".") for u in used)
    ]


_NO_GRAD_OPS = ("detach", "hardmax", "sample_onehot")


def _gradient_reaches(g, start) -> bool:
    """Whether, in train mode, a gradient flows from an output back to node `start`."""
    outs = {o for _, o in g.outputs}
    seen, stack = set(), [start]
    while stack:
        nid = stack.pop()
        if nid in outs:
            return True
        if nid in seen:
            continue
        seen.add(nid)
        for user in g.users(nid):
            u = g.node(user)
            if u["op"] in _NO_GRAD_OPS or (u["op"] == "if_training" and u["inputs"][0] != nid):
                continue
            stack.append(user)
    return False


# --- attach: blocks at module paths -----------------------------------------------------------------

WHERE = ("after", "before", "replace")


def _path_regex(pattern) -> re.Pattern:
    """A module-path matcher: a compiled regex or `re:<regex>` (full match), else a glob where `*`
    stays inside one dotted segment, `?` and `[...]` as in fnmatch, and `**` spans any number of
    segments (`layer*.*.bn3`, `layer[234].**.conv2`)."""
    if isinstance(pattern, re.Pattern):
        return pattern
    if pattern.startswith("re:"):
        try:
            return re.compile(pattern[3:])
        except re.error as e:
            raise AttnDSLError(f"bad module-path regex `{pattern[3:]}`: {e}") from None
    parts = []
    for seg in pattern.split("."):
        if seg == "**":
            parts.append(r"(?:[^.]+(?:\.[^.]+)*)")
        else:
            parts.append(_glob_segment(seg))
    return re.compile(r"\.".join(parts))


def _glob_segment(seg: str) -> str:
    out, i = [], 0
    while i < len(seg):
        c = seg[i]
        end = seg.find("]", i + 2) if c == "[" else -1
        if c == "*":
            out.append("[^.]*")
        elif c == "?":
            out.append("[^.]")
        elif end > 0:  # [0-9], [!x]: a character class
            body = seg[i + 1 : end]
            cls = "^" + re.escape(body[1:]) if body.startswith("!") else re.escape(body)
            out.append("[" + cls.replace("\\-", "-") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def match_paths(model: nn.Module, at) -> list[str]:
    """Module paths of the model that `at` (a glob, regex or list of them) matches, in model order."""
    patterns = [at] if isinstance(at, (str, re.Pattern)) else list(at)
    names = [n for n, _ in model.named_modules() if n]
    rx = [_path_regex(p) for p in patterns]
    out = [n for n in names if any(r.fullmatch(n) for r in rx)]
    if not out:
        shown = ", ".join(map(str, patterns))
        raise AttnDSLError(
            f"no module path matches `{shown}`",
            hint=did_you_mean(str(patterns[0]), names)
            or f"paths look like: {', '.join(names[:6])}{', ...' if len(names) > 6 else ''}",
        )
    return out


def _example_input(model: nn.Module, input_shape):
    if input_shape is not None:
        return tuple(input_shape)
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    if "input_size" in cfg:  # timm models say what they take
        return (1, *cfg["input_size"])
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))), None)
    if first is None:
        raise AttnDSLError(
            f"cannot guess an input for {type(model).__name__}",
            hint="pass input_shape=(1, C, H, W), the shape of one example input",
        )
    return (1, first.in_channels, *([224] * (first.weight.dim() - 2)))


def dry_run_shapes(model: nn.Module, paths, input_shape=None) -> dict:
    """path -> (input shape, output shape) of those modules, from one forward pass on the meta
    device: the model's own tensors stay where they are and nothing is computed."""
    shape = _example_input(model, input_shape)
    seen: dict = {}
    handles = []
    for p in paths:

        def hook(mod, args, out, p=p):
            if p not in seen:
                first = args[0] if args else None
                seen[p] = (
                    tuple(first.shape) if isinstance(first, torch.Tensor) else None,
                    tuple(out.shape) if isinstance(out, torch.Tensor) else None,
                )

        handles.append(model.get_submodule(p).register_forward_hook(hook))
    meta = {
        k: torch.empty_like(v, device="meta") for k, v in list(model.named_parameters()) + list(model.named_buffers())
    }
    try:
        with torch.no_grad():
            dtype = next((t.dtype for t in meta.values() if t.is_floating_point()), torch.get_default_dtype())
            torch.func.functional_call(model, meta, (torch.empty(shape, device="meta", dtype=dtype),))
    except Exception as e:  # the host's own error, on a guessed input
        raise AttnDSLError(
            f"the dry run of {type(model).__name__} on an input {list(shape)} failed: {type(e).__name__}: {e}",
            hint="pass input_shape=(1, C, H, W), the shape of one example input",
        ) from None
    finally:
        for h in handles:
            h.remove()
    missing = [p for p in paths if p not in seen]
    if missing:
        raise AttnDSLError(
            f"the dry run never called {', '.join(missing)}", hint="attach only to modules that run in forward"
        )
    return seen


def sizes_from_shape(spec, shape, given: dict) -> dict:
    """Parameters named in the spec's input shape (`[B, channels, "*S"]`), read off a host shape."""
    s = load(spec)
    if len(s.inputs) != 1 or len(s.outputs) != 1:
        raise AttnDSLError(
            f"`{s.name}` has {len(s.inputs)} inputs and {len(s.outputs)} outputs; attach places "
            "blocks of one input and one output",
            hint="call attndsl.build and wire it yourself",
        )
    dims = [str(d) for d in next(iter(s.inputs.values()))]
    star = [i for i, d in enumerate(dims) if d.startswith("*")]
    if (not star and len(dims) != len(shape)) or (star and len(shape) < len(dims) - 1):
        raise AttnDSLError(f"`{s.name}` takes an input {dims}, the host has {list(shape)} there")
    head = dims[: star[0]] if star else dims
    tail = dims[star[0] + 1 :] if star else []
    pairs = list(zip(head, shape)) + list(zip(tail, shape[len(shape) - len(tail) :]))
    out = {}
    for d, n in pairs:
        if d in s.params and d not in given:
            out[d] = int(n)
    return out


class _After:
    """Forward hook: the block applied to the module's output. A plain object (not a closure)
    so that models with attached blocks pickle and deep-copy."""

    def __init__(self, block):
        self.block = block

    def __call__(self, module, args, output):
        return self.block(output)


class _Before:
    def __init__(self, block):
        self.block = block

    def __call__(self, module, args):
        return (self.block(args[0]),) + tuple(args[1:])


def attach(model: nn.Module, spec, at, where: str = "after", *, input_shape=None, **params) -> list[str]:
    """Put a block of `spec` at every module path `at` matches; returns the new blocks' paths.

    where="after" applies it to the module's output, "before" to its first input (both by a
    forward hook on the module; the block is registered on the nearest ancestor that is not a
    Sequential/ModuleList/ModuleDict, as `<relative_path>_<spec>`, or on the module itself as
    `<spec>` when every ancestor is one, so only new state-dict keys appear); "replace" puts the
    block in the module's place. Sizes the spec's
    input shape names (`channels`, ...) come from one dry run on the meta device, with an
    input of `input_shape` (default: timm's pretrained_cfg, else 224 pixels on the first conv's
    channels). Blocks attached to one position run in the order they were attached.
    Symbolic tracing (torch.fx) does not see forward hooks: trace before attaching, or use replace.
    """
    if where not in WHERE:
        raise AttnDSLError(
            f"where must be one of {', '.join(WHERE)}, got `{where}`", hint=did_you_mean(str(where), WHERE)
        )
    cls = layer(spec)
    name = load(cls.spec_id).name
    paths = match_paths(model, at)
    shapes = dry_run_shapes(model, paths, input_shape)
    added = []
    for path in paths:
        shape_in, shape_out = shapes[path]
        host = shape_out if where == "after" else shape_in
        if host is None:
            raise AttnDSLError(f"`{path}` does not {'return' if where == 'after' else 'take'} one tensor")
        sizes = sizes_from_shape(cls.spec_id, host, params)
        block = cls(**sizes, **params)
        expect = shape_out if where == "replace" else host
        try:
            got = _block_shape(block, host)
        except Exception as e:  # the block's own check of its input
            raise AttnDSLError(
                f"`{name}` at `{path}` cannot take the host's {list(host)}: {type(e).__name__}: {e}",
                hint="pass the block's size parameters",
            ) from None
        if got != expect:
            raise AttnDSLError(
                f"`{name}` at `{path}` turns {list(host)} into {list(got)}, the host needs {list(expect)}",
                hint="choose a shape-keeping block or another position",
            )
        if where == "replace":
            parent_path, _, leaf = path.rpartition(".")
            setattr(model.get_submodule(parent_path), leaf, block)
            added.append(path)
            continue
        home_path = _home(model, path)
        home = model.get_submodule(home_path)
        rel = path[len(home_path) + 1 :] if home_path else path
        stem = name if home_path == path else f"{rel.replace('.', '_')}_{name}"
        new, k = stem, 1
        while hasattr(home, new):
            new, k = f"{stem}_{k}", k + 1
        home.add_module(new, block)
        target = model.get_submodule(path)
        if where == "after":
            target.register_forward_hook(_After(block))
        else:
            target.register_forward_pre_hook(_Before(block))
        added.append(f"{home_path}.{new}" if home_path else new)
    return added


_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _home(model: nn.Module, path: str) -> str:
    """Where a hooked block is registered: the nearest ancestor of `path` whose forward does not
    run its children in turn (a new child of an nn.Sequential would run as one more layer), else
    the module itself when it is no container."""
    parts = path.split(".")
    for i in range(len(parts) - 1, -1, -1):
        home = ".".join(parts[:i])
        if not isinstance(model.get_submodule(home), _CONTAINERS):
            return home
    if not isinstance(model.get_submodule(path), _CONTAINERS):  # e.g. a conv at the top of a Sequential:
        return path  # the block becomes its child
    raise AttnDSLError(
        f"no module at or above `{path}` can hold the block: they all run their children in order",
        hint="wrap the model in a module of your own, or use where='replace'",
    )


def _block_shape(block: nn.Module, shape) -> tuple:
    meta = {
        k: torch.empty_like(v, device="meta") for k, v in list(block.named_parameters()) + list(block.named_buffers())
    }
    with torch.no_grad():
        dtype = next((t.dtype for t in meta.values() if t.is_floating_point()), torch.get_default_dtype())
        y = torch.func.functional_call(block, meta, (torch.empty(shape, device="meta", dtype=dtype),))
    return tuple(y.shape)
