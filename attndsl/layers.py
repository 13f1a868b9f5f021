"""Declared layers -> torch modules, and the same layers as Python source.

One table drives both, so a built module and generated code construct the
same submodules with the same state-dict keys. Entry points: `make_layer`,
`layer_source`, `init_source`, `apply_ties`.
"""

from __future__ import annotations

import torch
from torch import nn

from . import inits
from .errors import LoweringError
from .inits import Init


class BatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over axis 1 for inputs of any rank (the rank is only known at run time)."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}D input)")


# kind -> (class name, [(torch argument, our argument, positional?)])
_TABLE = {
    "linear": (
        "Linear",
        [("in_features", "in_features", True), ("out_features", "out_features", True), ("bias", "bias", False)],
    ),
    "conv": (
        "Conv{n}d",
        [
            ("in_channels", "in_channels", True),
            ("out_channels", "out_channels", True),
            ("kernel_size", "kernel", True),
            ("stride", "stride", False),
            ("padding", "padding", False),
            ("dilation", "dilation", False),
            ("groups", "groups", False),
            ("bias", "bias", False),
        ],
    ),
    "batchnorm": (
        "BatchNorm{n}d",
        [
            ("num_features", "num_features", True),
            ("eps", "eps", False),
            ("momentum", "momentum", False),
            ("affine", "affine", False),
        ],
    ),
    "layernorm": (
        "LayerNorm",
        [("normalized_shape", "shape", True), ("eps", "eps", False), ("elementwise_affine", "affine", False)],
    ),
    "groupnorm": (
        "GroupNorm",
        [
            ("num_groups", "groups", True),
            ("num_channels", "channels", True),
            ("eps", "eps", False),
            ("affine", "affine", False),
        ],
    ),
}
_DEFAULTS = {
    "bias": True,
    "stride": 1,
    "padding": 0,
    "dilation": 1,
    "groups": 1,
    "eps": 1e-5,
    "momentum": 0.1,
    "affine": True,
    "elementwise_affine": True,
}


def _entry(kind: str, rank: int | None):
    if kind.startswith("conv"):
        cls, args = _TABLE["conv"]
        return cls.format(n=kind[4]), args
    cls, args = _TABLE[kind]
    if kind == "batchnorm":
        cls = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}.get(rank, "BatchNorm")
    return cls, args


def _compact(value):
    """(3, 3) -> 3: torch accepts either, and the short form reads better."""
    if isinstance(value, tuple) and value and all(v == value[0] for v in value):
        return value[0]
    return value


def make_layer(kind: str, args: dict, rank: int | None = None) -> nn.Module | nn.Parameter:
    if kind == "param":
        return nn.Parameter(_param_init(args["init"], args["shape"]))
    fold = args.get("fold")
    if fold:  # a conv/linear with a batch norm folded in: both built as unfolded, then the fresh BN folded
        from .passes.fold_bn import fold_module

        module = make_layer(kind, {**args, "bias": fold["conv_bias"], "fold": None})
        fold_module(module, make_layer("batchnorm", fold["bn_args"], rank))
        return module
    cls_name, table = _entry(kind, rank)
    cls = BatchNorm if cls_name == "BatchNorm" else getattr(nn, cls_name)
    kwargs = {t: _compact(args[o]) for t, o, _ in table}
    module = cls(**kwargs)
    _apply_init(module, args)
    return module


def layer_source(kind: str, args: dict, exprs: dict, rank: int | None = None) -> str:
    """`nn.Conv2d(channels, (channels // 16), 1, bias=False)`: parameters kept as expressions."""
    if kind == "param":
        return f"nn.Parameter({_param_init_source(args['init'], exprs.get('shape') or repr(args['shape']))})"
    cls_name, table = _entry(kind, rank)
    parts = []
    for t, o, positional in table:
        v = _compact(args[o])
        src = exprs.get(_arg_name(kind, o)) or repr(v)
        if not positional and o not in exprs and _DEFAULTS.get(t, object()) == v:
            continue
        parts.append(src if positional else f"{t}={src}")
    prefix = "" if cls_name == "BatchNorm" else "nn."
    return f"{prefix}{cls_name}({', '.join(parts)})"


def _arg_name(kind, ours):
    # the spec-level argument name behind a normalised one
    return {"kernel": "kernel"}.get(ours, ours)


# init name -> (what the built module runs on a tensor, the same as source over "{t}")
_INITS = {
    "zeros": (nn.init.zeros_, "nn.init.zeros_({t})"),
    "ones": (nn.init.ones_, "nn.init.ones_({t})"),
    "normal": (lambda t: nn.init.normal_(t, std=0.01), "nn.init.normal_({t}, std=0.01)"),
    "uniform": (lambda t: nn.init.uniform_(t, -0.1, 0.1), "nn.init.uniform_({t}, -0.1, 0.1)"),
}


def _init_recipe(how):
    """(function of a tensor, source template) for an init: a name, an init call, a number or a list of values."""
    if isinstance(how, Init):
        return inits.apply_fn(how), inits.source(how)
    if isinstance(how, str):
        return _INITS[how]
    if isinstance(how, (int, float)):
        return (lambda t: nn.init.constant_(t, how)), f"nn.init.constant_({{t}}, {how!r})"

    def copy(t):
        if len(how) != t.numel():
            raise LoweringError(f"an init lists {len(how)} values for a tensor of {t.numel()}")
        t.copy_(torch.tensor(list(how), dtype=t.dtype).view_as(t))

    return copy, f"with torch.no_grad():\n    {{t}}.copy_(torch.tensor({list(how)!r}).view_as({{t}}))"


def _overrides(args: dict):
    for which in ("weight", "bias"):
        how = args.get(f"{which}_init")
        if how is not None and how != "default" and not _is_tie(how):
            yield which, _init_recipe(how)


def _is_tie(how) -> bool:
    return isinstance(how, Init) and how.name == "tied"


def _ties(kind: str, args: dict):
    """(tensor path suffix, Init) of each tie of a layer: ("weight", ...), or ("", ...) for a param."""
    for key in ("init",) if kind == "param" else ("weight_init", "bias_init"):
        if _is_tie(args.get(key)):
            yield ("" if kind == "param" else key[: -len("_init")]), args[key]


def _tied_path(name: str, which: str, layers: dict, init: Init) -> tuple:
    """(own tensor path, the path it copies, transposed?) in the module."""
    other, transpose = inits.tie_source(init, which, layers[init.arg("layer")].kind)
    return (f"{name}.{which}" if which else name), other, transpose


def apply_ties(root: nn.Module, layers: dict) -> None:
    """Tied inits, once every layer exists: a copy of the other tensor (transposed on request), not shared storage."""
    with torch.no_grad():
        for name, decl in layers.items():
            for which, init in _ties(decl.kind, decl.args):
                own, other, transpose = _tied_path(name, which, layers, init)
                src = root.get_parameter(other)
                root.get_parameter(own).copy_(src.transpose(0, 1) if transpose else src)


def init_source(kind: str, args: dict, target: str, name: str = "", layers: dict | None = None, ref=None) -> list[str]:
    """Statements that re-create the init overrides of a layer; ties need the layers and `ref` (path -> source)."""
    # a bias init of a layer built without a bias (`bias=qkv_bias`, false) does nothing, as in `_apply_init`
    out = [
        src.format(t=f"{target}.{which}")
        for which, (_, src) in _overrides(args)
        if not (which == "bias" and args.get("bias") is False)
    ]
    for which, init in _ties(kind, args):
        _, other, transpose = _tied_path(name, which, layers, init)
        head, _, attr = other.rpartition(".") if layers[init.arg("layer")].kind != "param" else (other, "", "")
        other_src = f"{ref(head)}.{attr}" if attr else ref(head)
        own = f"{target}.{which}" if which else target
        out.append(f"with torch.no_grad():\n    {own}.copy_({other_src}{'.transpose(0, 1)' if transpose else ''})")
    return out


def _apply_init(module: nn.Module, args: dict) -> None:
    with torch.no_grad():
        for which, (fn, _) in _overrides(args):
            if getattr(module, which, None) is not None:
                fn(getattr(module, which))


def _param_init(init, shape):
    t = torch.zeros(shape)
    if init not in ("zeros", None, "default") and not _is_tie(init):  # a tie is copied by apply_ties
        with torch.no_grad():
            _init_recipe(init)[0](t)
    return t


def _param_init_source(init, shape_src):
    if init in ("zeros", None, "default") or _is_tie(init):
        return f"torch.zeros({shape_src})"
    src = _init_recipe(init)[1]
    if "\n" in src:  # a list of values
        return f"torch.tensor({list(init)!r}).view({shape_src})"
    # the init functions work in place and return their tensor
    return src.format(t=f"torch.empty({shape_src})")
