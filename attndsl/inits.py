"""The initialisation vocabulary: `weight_init=kaiming_normal(mode="fan_out", nonlinearity="relu")`.

An init call in a program is a compile-time description, never run as Python:
the frontend turns it into an `Init` (a name from `TABLE` and its checked
arguments), the built module applies the torch.nn.init function the table
names, and generated code writes the same call from the table's fixed
function name with each argument as a repr (or, where it depends on
parameters, as the parameter expression the frontend recorded).
`tied(layer, transpose=false)` copies another layer's tensor at build time
(EANet's value memory starts as the transpose of its key memory).
Entry points: `TABLE`, `Init`, `make`, `check_fits`, `apply_fn`, `source`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import did_you_mean
from .ops import OpError

REQUIRED = object()
MODES = ("fan_in", "fan_out")
# torch.nn.init.calculate_gain's names
NONLINEARITIES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
)
_NUM, _POS, _LAYER, _BOOL = "number", "positive", "layer", "bool"
_KAIMING = (("a", 0.0, _NUM), ("mode", "fan_in", MODES), ("nonlinearity", "leaky_relu", NONLINEARITIES))

# name -> ((argument, default, kind: number | positive | layer | bool | tuple of choices), torch.nn.init function)
TABLE = {
    "zeros": ((), "zeros_"),
    "ones": ((), "ones_"),
    "constant": ((("value", REQUIRED, _NUM),), "constant_"),
    "normal": ((("mean", 0.0, _NUM), ("std", 1.0, _POS)), "normal_"),
    "uniform": ((("a", 0.0, _NUM), ("b", 1.0, _NUM)), "uniform_"),
    "trunc_normal": ((("mean", 0.0, _NUM), ("std", 1.0, _POS), ("a", -2.0, _NUM), ("b", 2.0, _NUM)), "trunc_normal_"),
    "xavier_normal": ((("gain", 1.0, _POS),), "xavier_normal_"),
    "xavier_uniform": ((("gain", 1.0, _POS),), "xavier_uniform_"),
    "kaiming_normal": (_KAIMING, "kaiming_normal_"),
    "kaiming_uniform": (_KAIMING, "kaiming_uniform_"),
    "tied": ((("layer", REQUIRED, _LAYER), ("transpose", False, _BOOL)), None),
}
_TORCH_NAMES = {"value": "val"}  # where torch.nn.init names an argument otherwise
FAN_SCALED = ("xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform")


@dataclass(frozen=True)
class Ref:
    """A declared layer (or `param`) named as an init argument: `tied(linear_0)`."""

    name: str


@dataclass(frozen=True)
class Init:
    name: str
    args: tuple = ()  # ((argument, value), ...): every argument of TABLE[name], in its order
    srcs: tuple = ()  # ((argument, Python source over parameters), ...) where a value depends on them

    def arg(self, key):
        return dict(self.args)[key]

    def __str__(self):
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.args)})"


def make(name: str, args: list, kwargs: dict) -> Init:
    """A checked init from its call's arguments, each a (value, source or None) pair or a `Ref`.

    Raises OpError naming the argument at fault.
    """
    sig, _ = TABLE[name]
    names = [a for a, _, _ in sig]
    if len(args) > len(sig):
        raise OpError(
            f"`{name}` takes at most {len(sig)} argument(s) ({', '.join(names) or 'none'}), got {len(args)}",
            None,
            f"signature: {signature(name)}",
        )
    given = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise OpError(
                f"`{name}` has no argument `{k}`", k, did_you_mean(k, names) or f"signature: {signature(name)}"
            )
        if k in given:
            raise OpError(f"`{name}` got `{k}` twice", k)
        given[k] = v
    values, srcs = [], []
    for arg, default, kind in sig:
        if arg not in given:
            if default is REQUIRED:
                raise OpError(f"`{name}` needs `{arg}`", None, f"signature: {signature(name)}")
            values.append((arg, default))
            continue
        v = given[arg]
        if kind == _LAYER:
            if not isinstance(v, Ref):
                raise OpError(f"`{name}`: `{arg}` must be a declared layer or param, got {_what(v)}", arg)
            values.append((arg, v.name))
            continue
        value, src = v if isinstance(v, tuple) else (v, None)
        values.append((arg, _checked(name, arg, kind, value)))
        if src is not None:
            srcs.append((arg, src))
    init = Init(name, tuple(values), tuple(srcs))
    _check_together(init)
    return init


def _what(v) -> str:
    if isinstance(v, Ref):
        return "a layer"
    v = v[0] if isinstance(v, tuple) else v
    return {bool: "a boolean", str: "a string", type(None): "none"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else "a value"
    )


def _checked(name, arg, kind, v):
    if kind == _BOOL:
        if not isinstance(v, bool):
            raise OpError(f"`{name}`: `{arg}` must be true or false, got {v!r}", arg)
        return v
    if isinstance(kind, tuple):
        if v not in kind:
            raise OpError(
                f"`{name}`: `{arg}` must be one of {', '.join(kind)}, got {v!r}",
                arg,
                did_you_mean(str(v), kind) if isinstance(v, str) else None,
            )
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise OpError(f"`{name}`: `{arg}` must be a number, got {_what(v)} {v!r}", arg)
    if kind == _POS and v <= 0:
        raise OpError(f"`{name}`: `{arg}` must be positive, got {v!r}", arg)
    return float(v)


def _check_together(init: Init) -> None:
    """Checks over several arguments: what torch would refuse or warn about at build time."""
    a = dict(init.args)
    if init.name in ("uniform", "trunc_normal") and not a["a"] < a["b"]:
        raise OpError(f"`{init.name}`: the bounds must satisfy a < b, got a={a['a']!r}, b={a['b']!r}", "b")
    if init.name == "trunc_normal" and (a["mean"] < a["a"] - 2 * a["std"] or a["mean"] > a["b"] + 2 * a["std"]):
        raise OpError(
            f"`trunc_normal`: mean {a['mean']!r} lies more than 2 std from [a, b]; the draw "
            "would not follow the truncated normal",
            "mean",
        )


def signature(name: str) -> str:
    parts = []
    for arg, default, _ in TABLE[name][0]:
        parts.append(arg if default is REQUIRED else f"{arg}={default!r}")
    return f"{name}({', '.join(parts)})"


def tensor_shapes(kind: str, args: dict) -> dict:
    """{"weight": shape, "bias": shape} of a layer (the tensor itself for a `param`), as torch builds them."""
    if kind == "param":
        return {"init": tuple(args["shape"])}
    if kind == "linear":
        w = (args["out_features"], args["in_features"])
        return {"weight": w, "bias": w[:1] if args["bias"] else None}
    if kind.startswith("conv"):
        w = (args["out_channels"], args["in_channels"] // args["groups"], *args["kernel"])
        return {"weight": w, "bias": w[:1] if args["bias"] else None}
    if kind == "batchnorm":
        c = (args["num_features"],) if args["affine"] else None
        return {"weight": c, "bias": c}
    return {}


def check_fits(kind: str, args: dict, layers: dict) -> None:
    """Each init of a layer suits its tensor: fan-scaled inits need 2 or more axes, a tie a same-shaped layer.

    `layers`: name -> (kind, args) of the layers declared so far. Raises OpError naming the argument.
    """
    shapes = tensor_shapes(kind, args)
    for which, shape in shapes.items():
        key = which if kind == "param" else f"{which}_init"
        init = args.get(key)
        if not isinstance(init, Init):
            continue
        if shape is None:
            raise OpError(
                f"`{key}={init.name}(...)`: this {kind} has no {which}",
                key,
                "bias=false (or affine=false) leaves it out",
            )
        if init.name in FAN_SCALED and len(shape) < 2:
            raise OpError(
                f"`{init.name}` needs a tensor of 2 or more axes (its fans), the {which} has shape {list(shape)}",
                key,
                "normal(std=...) or uniform(a=..., b=...) for vectors",
            )
        if init.name == "tied":
            other = init.arg("layer")
            okind, oargs = layers[other]
            oshape = tensor_shapes(okind, oargs).get("init" if okind == "param" else which)
            if oshape is None:
                raise OpError(f"`tied`: layer `{other}` has no {which}", key)
            if init.arg("transpose"):
                if len(oshape) < 2:
                    raise OpError(f"`tied`: transpose=true needs 2 or more axes, `{other}` has {list(oshape)}", key)
                oshape = (oshape[1], oshape[0], *oshape[2:])
            if tuple(oshape) != tuple(shape):
                raise OpError(
                    f"`tied`: the {which} {list(shape)} cannot start as `{other}`'s "
                    f"{list(oshape)}{' transposed' if init.arg('transpose') else ''}",
                    key,
                    "tie layers of the same shape (transpose=true swaps the first two axes)",
                )


def tie_source(init: Init, which: str, other_kind: str) -> tuple:
    """(name of the tensor a tie copies, whether transposed): `linear_0.weight`, or the param itself."""
    other = init.arg("layer")
    return (other if other_kind == "param" else f"{other}.{which}"), init.arg("transpose")


def apply_fn(init: Init):
    """What the built module runs on a tensor, in place (not for `tied`, which needs the whole module)."""
    from torch import nn

    fn = getattr(nn.init, TABLE[init.name][1])
    kwargs = {_TORCH_NAMES.get(k, k): v for k, v in init.args}
    return lambda t: fn(t, **kwargs)


def source(init: Init) -> str:
    """The same as Python source over "{t}": the table's function, each argument a repr or a parameter expression."""
    srcs = dict(init.srcs)
    parts = ["{t}"] + [f"{_TORCH_NAMES.get(k, k)}={_braces(srcs[k]) if k in srcs else repr(v)}" for k, v in init.args]
    return f"nn.init.{TABLE[init.name][1]}({', '.join(parts)})"


def _braces(src: str) -> str:
    # the template is formatted with {t}; a parameter expression holds no braces, but keep it literal regardless
    return src.replace("{", "{{").replace("}", "}}")
