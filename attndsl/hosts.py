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
import fnmatch
import os
import re

import torch
from torch import nn

from .errors import AttnDSLError, ParamError, did_you_mean
from .pipeline import build, load

# --- layer: a class per (spec, fixed parameters) ----------------------------------------------------


class _LayerType(type):
    """The metaclass of layer classes: pickled as `layer(spec, **params)`, so a saved model loads
    in a process that never called `layer`."""


def _reduce_layer_type(cls):
    if cls.__dict__.get("spec_id") is None:           # AttnLayer itself, or a user's subclass
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
        self.params = dict(compiled.params)                  # every parameter's value, defaults included
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
        if fn is None:                                       # unpickled in a fresh process
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
        cls = _LayerType(cname, (AttnLayer,), {"spec_id": spec_id, "fixed": fixed, "__module__": __name__,
                                               "__doc__": f"attndsl.layer({spec_id!r}, **{fixed!r})"})
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
            raise ParamError(f"`{s.name}` has no parameter `{k}`", s.span("params"),
                             did_you_mean(k, s.params) or f"parameters: {', '.join(s.params)}")
    if "channels" not in s.params:
        raise AttnDSLError(f"`{s.name}` has no `channels` parameter, so it cannot be an attention layer class "
                           "that hosts call with the channel count", hint="use attndsl.build for it")
    s.resolve(**{"channels": 1, **params}) if "channels" not in params else s.resolve(**params)
    return _layer_class(spec_id, tuple(sorted((k, _freeze(v)) for k, v in params.items())))


# What timm passes to attention layers, and how a spec can express it. The reduction ratio is
# a float in timm (1/16) and an int divisor in most specs (16); the hidden width is
# `rd_channels`; activation and gate classes map to a spec's `activation`/`gate` string choice.
_RATIO_PARAMS = ("reduction", "ratio")
_HIDDEN_PARAMS = ("hidden", "inter_channels")
_ACT_NAMES = {"ReLU": "relu", "SiLU": "silu", "Swish": "silu", "Hardswish": "hswish", "HardSwish": "hswish",
              "GELU": "gelu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Hardsigmoid": "hsigmoid",
              "HardSigmoid": "hsigmoid"}


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
        raise ParamError(f"`{s.name}` cannot take timm's `{k}`: {why}", s.span("params"),
                         f"its parameters: {', '.join(s.params)}")

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
            if v is None:                                    # timm's "the module's default"
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
    used = {g.node(nid)["attrs"]["layer"] for nid in g.order()
            if g.node(nid)["op"] in ("layer", "param") and _gradient_reaches(g, nid)}
    return [name for name, p in module.named_parameters() if p.requires_grad
            and not any(name == u or name.startswith(u + ".") for u in used)]


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
