"""The layers' argument rules and shapes: what `conv2d(...)` etc. accept, and the shape of applying one.

The modules themselves are built in attndsl/layers.py."""

from __future__ import annotations

import math

from ..shapes import Pack, dim_eq, fmt_shape
from .registry import LAYERS, OpError, T, conv_out, layer, need_int, need_rank, register, tuple_n

INITS = ("zeros", "ones", "normal", "uniform", "default")


def _float(v, arg):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise OpError(f"`{arg}` must be a number, got {v!r}", arg)
    return float(v)


def _init(v, arg):
    if (
        v is None
        or isinstance(v, (int, float))
        or (isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v))
    ):
        return v if not isinstance(v, list) else tuple(v)
    if isinstance(v, str) and v in INITS:
        return v
    from ..errors import did_you_mean
    from ..inits import TABLE, Init  # the init vocabulary (imports this package)

    if isinstance(v, Init):
        return v
    hint = (f"call it: `{arg}={v}(...)`" if v in TABLE else did_you_mean(v, INITS)) if isinstance(v, str) else None
    raise OpError(
        f"`{arg}` must be one of {', '.join(INITS)}, an init call such as kaiming_normal(...), "
        f"a number or a list of numbers, got {v!r}",
        arg,
        hint or "docs/language.md, Initialisation",
    )


@layer("linear")
def linear_layer(in_features, out_features, bias=True, weight_init=None, bias_init=None):
    """Fully connected layer acting on the last axis: weight [out, in]."""
    need_int(in_features, "in_features", 1), need_int(out_features, "out_features", 1)
    return {
        "in_features": in_features,
        "out_features": out_features,
        "bias": bool(bias),
        "weight_init": _init(weight_init, "weight_init"),
        "bias_init": _init(bias_init, "bias_init"),
    }


def _ints(v, n, arg, minimum):
    out = tuple_n(v, n, arg)
    for i in out:
        need_int(i, arg, minimum)
    return out


def _conv(n):
    def conv(
        in_channels,
        out_channels,
        kernel,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        weight_init=None,
        bias_init=None,
    ):
        need_int(in_channels, "in_channels", 1), need_int(out_channels, "out_channels", 1)
        need_int(groups, "groups", 1)
        if in_channels % groups or out_channels % groups:
            raise OpError(
                f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}", "groups"
            )
        k = _ints(kernel, n, "kernel", 1)
        d = _ints(dilation, n, "dilation", 1)
        if padding == "same":
            padding = tuple(dd * (kk - 1) // 2 for kk, dd in zip(k, d))
        return {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "kernel": k,
            "stride": _ints(stride, n, "stride", 1),
            "padding": _ints(padding, n, "padding", 0),
            "dilation": d,
            "groups": groups,
            "bias": bool(bias),
            "weight_init": _init(weight_init, "weight_init"),
            "bias_init": _init(bias_init, "bias_init"),
        }

    conv.__doc__ = f'{n}-D convolution over [B, C, *{n} spatial axes]; `padding="same"` keeps the size.'
    return conv


for _n in (1, 2, 3):
    register(LAYERS, f"conv{_n}d", _conv(_n))


@layer("batchnorm")
def batchnorm_layer(num_features, eps=1e-5, momentum=0.1, affine=True, weight_init=None, bias_init=None):
    """Batch normalisation over axis 1 of [B, C, ...] (any rank)."""
    need_int(num_features, "num_features", 1)
    return {
        "num_features": num_features,
        "eps": _float(eps, "eps"),
        "momentum": _float(momentum, "momentum"),
        "affine": bool(affine),
        "weight_init": _init(weight_init, "weight_init"),
        "bias_init": _init(bias_init, "bias_init"),
    }


@layer("layernorm")
def layernorm_layer(shape, eps=1e-5, affine=True):
    """Layer normalisation over the trailing axes `shape`."""
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
    for d in shape:
        need_int(d, "shape", 1)
    return {"shape": shape, "eps": _float(eps, "eps"), "affine": bool(affine)}


@layer("groupnorm")
def groupnorm_layer(groups, channels, eps=1e-5, affine=True):
    """Group normalisation over axis 1 of [B, C, ...]."""
    need_int(groups, "groups", 1), need_int(channels, "channels", 1)
    if channels % groups:
        raise OpError(f"groups={groups} must divide channels={channels}", "groups")
    return {"groups": groups, "channels": channels, "eps": _float(eps, "eps"), "affine": bool(affine)}


@layer("param")
def param_layer(shape, init="zeros"):
    """A raw learned tensor of the given shape (`alpha = param([channels], init="ones")`)."""
    shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
    for d in shape:
        need_int(d, "shape", 1)
    return {"shape": shape, "init": _init(init, "init")}


def layer_apply_shape(kind: str, args: dict, x: T):
    """Shape of applying a declared layer to x."""
    s = x.shape
    if kind == "linear":
        if not s or isinstance(s[-1], Pack) or not dim_eq(s[-1], args["in_features"]):
            raise OpError(f"linear expects last axis {args['in_features']}, got {fmt_shape(s)}")
        return s[:-1] + (args["out_features"],)
    if kind.startswith("conv"):
        n = int(kind[4])
        need_rank(x, (n + 2,), kind)
        if not dim_eq(s[1], args["in_channels"]):
            raise OpError(f"{kind} expects {args['in_channels']} input channels, got {fmt_shape(s)}")
        sp = tuple(
            conv_out(d, k, st, p, dl)
            for d, k, st, p, dl in zip(s[2:], args["kernel"], args["stride"], args["padding"], args["dilation"])
        )
        return (s[0], args["out_channels"]) + sp
    if kind == "batchnorm":
        if len(s) < 2 or not dim_eq(s[1], args["num_features"]):
            raise OpError(f"batchnorm expects {args['num_features']} channels on axis 1, got {fmt_shape(s)}")
        return s
    if kind == "groupnorm":
        if len(s) < 2 or not dim_eq(s[1], args["channels"]):
            raise OpError(f"groupnorm expects {args['channels']} channels on axis 1, got {fmt_shape(s)}")
        return s
    if kind == "layernorm":
        n = len(args["shape"])
        if len(s) < n or not all(dim_eq(a, b) for a, b in zip(s[-n:], args["shape"])):
            raise OpError(f"layernorm over {list(args['shape'])} does not fit {fmt_shape(s)}")
        return s
    raise OpError(f"a `{kind}` cannot be applied like a function; use it as a tensor")


def layer_numel(kind: str, a: dict) -> int:
    """Elements of the weight a declared layer allocates (its largest tensor)."""
    if kind == "linear":
        return a["in_features"] * a["out_features"]
    if kind.startswith("conv"):
        return a["out_channels"] * (a["in_channels"] // a["groups"]) * math.prod(a["kernel"])
    if kind == "batchnorm":
        return a["num_features"]
    if kind == "groupnorm":
        return a["channels"]
    return math.prod(a["shape"])  # layernorm, param
