"""Lowering: IR graph -> torch.fx.GraphModule with real submodules and parameters.

Input: an `ir.Graph` (after passes). Output: an `fx.GraphModule` whose
forward takes the spec's inputs in order and returns its outputs (a tuple
when there are several). The fx graph is built node by node, never traced.
Entry point: `lower`.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from . import runtime, syntax as S
from .errors import LoweringError
from .ir import Graph
from .layers import make_layer
from .ops import COMPARISONS
from .shapes import Pack, fmt_dim, split_pack
from .spec import eval_static

# op -> torch callable for the ops that map one to one (positional tensor inputs, attrs as kwargs)
UNARY = {
    "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp, "log": torch.log,
    "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "abs": torch.abs, "gelu": F.gelu, "silu": F.silu,
    "softplus": F.softplus, "square": torch.square, "hardsigmoid": F.hardsigmoid, "neg": operator.neg,
    "sign": torch.sign, "elu": F.elu, "relu6": F.relu6, "hardswish": F.hardswish,
}
BINARY = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
    "pow": operator.pow, "matmul": operator.matmul, "floordiv": operator.floordiv, "mod": operator.mod,
}
REDUCE = {"sum": torch.sum, "mean": torch.mean, "amax": torch.amax, "amin": torch.amin, "max": torch.amax,
          "min": torch.amin, "logsumexp": torch.logsumexp, "prod": torch.prod}

# how generated code spells each callable
SOURCE = {fn: f"torch.{fn.__name__}" for fn in list(UNARY.values()) + list(REDUCE.values())
          if getattr(fn, "__module__", "") in ("torch", None) or fn.__name__ in dir(torch)}
SOURCE.update({fn: f"F.{fn.__name__}" for fn in (F.gelu, F.silu, F.softplus, F.hardsigmoid, F.elu, F.relu6,
                                                 F.hardswish, F.normalize, F.interpolate, F.pad,
                                                 F.grid_sample, F.scaled_dot_product_attention,
                                                 F.leaky_relu,
                                                 F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
                                                 F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
                                                 F.adaptive_max_pool2d, F.adaptive_max_pool3d,
                                                 F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.max_pool1d,
                                                 F.max_pool2d, F.max_pool3d)})
for _fn in (torch.softmax, torch.log_softmax, torch.var, torch.std, torch.transpose, torch.permute, torch.flatten,
            torch.unsqueeze, torch.squeeze, torch.cat, torch.stack, torch.split, torch.select, torch.narrow,
            torch.maximum, torch.minimum, torch.clamp, torch.where, torch.index_select, torch.addcmul,
            torch.einsum, torch.roll, torch.masked_fill):
    SOURCE[_fn] = f"torch.{_fn.__name__}"
SOURCE[torch.full_like] = "torch.full_like"
INFIX = {operator.ne: "!=", operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/", operator.pow: "**",
         operator.matmul: "@", operator.floordiv: "//", operator.mod: "%"}


class _Builder:
    def __init__(self, graph: Graph):
        self.ir, self.fx, self.root = graph, fx.Graph(), nn.Module()
        self.buffers = {}      # buffer name -> (runtime fn name, args)
        self.current = None    # IR node being lowered

    def node(self, kind, target, args=(), kwargs=None, name=None):
        n = self.current
        label = name or (n["name"] if n and n["name"] else (n["op"] if n else None))
        out = self.fx.create_node(kind, target, tuple(args), kwargs or {}, name=label)
        out.meta["span"] = n["span"] if n else None     # codegen quotes the spec line
        return out

    def call(self, fn, args=(), kwargs=None, name=None):
        return self.node("call_function", fn, args, kwargs, name)

    def method(self, meth, args=(), kwargs=None):
        return self.node("call_method", meth, args, kwargs)


def _dims(b: _Builder, x, shape, dims):
    """Axis argument for a reduction; a variadic run becomes a runtime axis tuple."""
    if "S" not in dims:
        return tuple(dims)
    pre, _, suf = split_pack(shape)
    fixed = tuple(d for d in dims if d != "S")
    return b.call(runtime.axes, (x, fixed, len(pre), len(suf)), name="dims")


def _is_node(v):
    return isinstance(v, fx.Node)


def _sizes(b: _Builder, sizes):
    """Output sizes for the graph: ints as they are, a symbolic size (`H`) read off an input that has it."""
    out = []
    for d in sizes:
        if isinstance(d, int):
            out.append(d)
            continue
        for name, nid in b.ir.inputs:
            shape = b.ir.node(nid)["shape"]
            pre, pack, suf = split_pack(shape)
            axes = [i for i, s in enumerate(pre) if s == d] + [i - len(suf) for i, s in enumerate(suf) if s == d]
            if axes:
                x = next(n for n in b.fx.nodes if n.op == "placeholder" and n.target == name)
                out.append(b.node("call_method", "size", (x, axes[0]), name="size"))
                break
        else:
            raise LoweringError(f"size `{d}` is no axis of an input: name a symbol of the inputs' shapes",
                                b.current["span"] if b.current else None)
    return tuple(out)


def lower_node(b: _Builder, n: dict, ins: list):
    op, a = n["op"], n["attrs"]
    in_shapes = [b.ir.node(i)["shape"] for i in n["inputs"]]
    if op == "const":
        return a["value"]
    if op in BINARY:
        if not any(_is_node(v) for v in ins):
            return BINARY[op](*ins)
        return b.call(BINARY[op], ins)
    if op in ("maximum", "minimum"):
        if all(_is_node(v) for v in ins):
            return b.call(torch.maximum if op == "maximum" else torch.minimum, ins)
        t, s = (ins[0], ins[1]) if _is_node(ins[0]) else (ins[1], ins[0])
        return b.call(torch.clamp, (t,), {"min" if op == "maximum" else "max": s})
    if op == "gelu" and a.get("approximate"):
        return b.call(F.gelu, ins, {"approximate": a["approximate"]})
    if op in COMPARISONS:       # a float mask, as every tensor of the language (see ops.COMPARISONS)
        return b.call(runtime.compare_mask, (ins[0], ins[1], op), name="mask")
    if op in ("logical_and", "logical_or", "logical_not"):
        return b.call(runtime.logical_mask, (op, *ins), name="mask")
    if op == "masked_fill":
        cond = b.call(operator.ne, (ins[1], 0), name="cond")
        return b.call(torch.masked_fill, (ins[0], cond, a["value"]))
    if op == "einsum":
        return b.call(torch.einsum, (a["equation"], *ins))
    if op == "roll":
        return b.call(torch.roll, (ins[0], a["shifts"], a["dims"]))
    if op in UNARY:
        if not _is_node(ins[0]):
            return -ins[0] if op == "neg" else getattr(__import__("math"), op)(ins[0])
        return b.call(UNARY[op], ins)
    if op == "leaky_relu":
        return b.call(F.leaky_relu, ins, {"negative_slope": a["slope"]})
    if op == "clamp":
        return b.call(torch.clamp, ins, {"min": a["min"], "max": a["max"]})
    if op in REDUCE:
        dims = _dims(b, ins[0], in_shapes[0], a["dims"])
        if op == "prod":
            if len(a["dims"]) != 1 or "S" in a["dims"]:
                raise LoweringError("prod reduces over one fixed axis only")
            return b.call(torch.prod, (ins[0], a["dims"][0]), {"keepdim": a["keepdim"]})
        return b.call(REDUCE[op], (ins[0], dims), {"keepdim": a["keepdim"]})
    if op == "reduce":      # kind fixed at compile time: lowers to the plain torch reduction
        dims = _dims(b, ins[0], in_shapes[0], a["dims"])
        if a["kind"] == "l2":
            sq = b.call(torch.sum, (b.call(torch.square, (ins[0],)), dims), {"keepdim": a["keepdim"]})
            return b.call(torch.sqrt, (sq,))
        return b.call(REDUCE[a["kind"]], (ins[0], dims), {"keepdim": a["keepdim"]})
    if op in ("var", "std"):
        dims = _dims(b, ins[0], in_shapes[0], a["dims"])
        return b.call(torch.var if op == "var" else torch.std, (ins[0], dims),
                      {"correction": 1 if a["unbiased"] else 0, "keepdim": a["keepdim"]})
    if op == "cov":
        return b.call(runtime.cov, ins, {"unbiased": a["unbiased"]})
    if op == "dropout":     # reads the module's train/eval flag at run time
        return b.call(runtime.apply_dropout, (ins[0], a["p"], a["channelwise"], b.fx.get_attr("training")))
    if op == "numel":
        return b.call(runtime.numel_over, (ins[0], _dims(b, ins[0], in_shapes[0], a["dims"])))
    if op in ("softmax", "log_softmax"):
        return b.call(torch.softmax if op == "softmax" else torch.log_softmax, (ins[0], a["dim"]))
    if op == "normalize":
        return b.call(F.normalize, ins, {"p": a["p"], "dim": a["dim"], "eps": a["eps"]})
    if op == "transpose":
        return b.call(torch.transpose, (ins[0], a["dim0"], a["dim1"]))
    if op == "permute":
        return b.call(torch.permute, (ins[0], a["dims"]))
    if op == "flatten":
        return b.call(torch.flatten, (ins[0], a["start"], a["end"]))
    if op == "unsqueeze":
        if a.get("like"):
            return b.call(runtime.unsqueeze_like, ins)
        return b.call(torch.unsqueeze, (ins[0], a["dim"]))
    if op == "squeeze":
        return b.call(torch.squeeze, (ins[0], a["dim"]))
    if op == "rearrange":
        return b.call(runtime.rearrange, (ins[0], a["pattern"]), dict(a["sizes"]))
    if op in ("concat", "cat"):
        return b.call(torch.cat, (list(ins), a["dim"]))
    if op == "stack":
        return b.call(torch.stack, (list(ins), a["dim"]))
    if op in ("split", "chunk"):
        return b.call(torch.split, (ins[0], list(a["sizes"]), a["dim"]))
    if op == "getitem":
        return b.call(operator.getitem, (ins[0], a["index"]))
    if op == "select":
        return b.call(torch.select, (ins[0], a["dim"], a["index"]))
    if op == "narrow":
        return b.call(torch.narrow, (ins[0], a["dim"], a["start"], a["length"]))
    if op == "split_like":
        return b.call(runtime.split_like, (ins[0], list(ins[1:]), a["dim"]))
    if op == "conv2d_fn":
        bias = ins[2] if a["bias"] else None
        kernel = tuple(in_shapes[1][-2:])
        kw = {"kernel": kernel} if len(in_shapes[1]) == 5 and all(isinstance(k, int) for k in kernel) else {}
        return b.call(runtime.conv2d_fn, (ins[0], ins[1], bias, a["stride"], a["padding"], a["dilation"], a["groups"]),
                      kw)
    if op == "expand":
        return b.method("expand_as", ins)
    if op == "reshape":
        return b.method("reshape_as", ins)
    if op == "where":
        # conditions are float tensors (the language has no bool dtype): nonzero means true
        cond = b.call(operator.ne, (ins[0], 0), name="cond")
        return b.call(torch.where, (cond, ins[1], ins[2]))
    pool_kw = {"count_include_pad": False} if a.get("count_include_pad") is False else {}
    if op in ("avg_pool", "max_pool") and split_pack(in_shapes[0])[1] is not None:
        return b.call(runtime.pool_nd, (ins[0], op, a["kernel"], a["stride"], a["padding"]), pool_kw)
    if op in ("adaptive_avg_pool", "adaptive_max_pool", "avg_pool", "max_pool"):
        nd = len(in_shapes[0]) - 2
        fn = getattr(F, f"{op}{nd}d")
        if op.startswith("adaptive"):
            # pooling to the size the input already has is the identity, and not free in torch
            return b.call(runtime.adaptive_pool, (ins[0], op[9:12], _sizes(b, a["size"])))
        return b.call(fn, (ins[0], a["kernel"]), {"stride": a["stride"], "padding": a["padding"],
                                                  **({"ceil_mode": True} if a.get("ceil_mode") else {}), **pool_kw})
    if op == "interpolate":
        kw = {"mode": a["mode"]}
        if a["align_corners"] is not None:
            kw["align_corners"] = a["align_corners"]
        if len(ins) == 2:
            return b.call(runtime.interpolate_like, ins, kw)
        if "size" in a:
            return b.call(F.interpolate, (ins[0],), {"size": _sizes(b, a["size"]), **kw})
        return b.call(F.interpolate, (ins[0],), {"scale_factor": a["scale"], **kw})
    if op == "pad":
        if a.get("mode", "constant") != "constant":
            return b.call(F.pad, (ins[0], list(a["padding"])), {"mode": a["mode"]})
        return b.call(F.pad, (ins[0], list(a["padding"])), {"value": a["value"]})
    if op == "unfold":
        return b.call(runtime.sliding, (ins[0], a["dim"], a["size"], a["step"], a["padding"]))
    if op == "affine_grid":
        return b.call(runtime.affine_grid_like, ins, {"align_corners": a["align_corners"]})
    if op == "grid_sample":
        return b.call(F.grid_sample, ins, {"mode": a["mode"], "padding_mode": a["padding_mode"],
                                           "align_corners": a["align_corners"]})
    if op == "index_select":
        return b.call(torch.index_select, (ins[0], a["dim"], ins[1]))
    if op == "gather":
        return b.call(runtime.gather, (ins[0], a["dim"], ins[1]))
    if op == "sample_onehot":
        return b.call(runtime.sample_onehot, (ins[0], ins[1], a["dim"]))
    if op == "split_matrix":
        return b.call(runtime.split_matrix, (ins[0], a["dim"], a["n"]))
    if op == "hardmax":
        return b.call(runtime.hardmax, (ins[0], a["dim"]))
    if op == "patch_grid":
        return b.call(runtime.patch_grid, (ins[0], ins[1], a["size"]))
    if op == "attention":
        kw = {} if a["scale"] is None else {"scale": a["scale"]}
        # 2-D and 3-D operands run as 4-D ([B, 1, L, E]): the fused op's layout every exporter accepts
        lead = {2: (0, 0), 3: (1,)}.get(len(in_shapes[0])) if len({len(s) for s in in_shapes}) == 1 else None
        if lead is None:
            return b.call(F.scaled_dot_product_attention, ins, kw)
        for d in lead:
            ins = [b.call(torch.unsqueeze, (t, d)) for t in ins]
        out = b.call(F.scaled_dot_product_attention, ins, kw)
        for d in reversed(lead):
            out = b.call(torch.squeeze, (out, d))
        return out
    if op == "gate":
        return b.call(runtime.gate, ins, {"act": a["act"], "plus_one": a["plus_one"]})
    if op == "detach":
        return b.method("detach", ins)
    if op == "random_bases":    # read as a copy: a train-mode ema_update may change the buffer after this use
        return b.method("clone", (_buffer(b, n),))
    if op == "ema_update":      # updates the buffer behind a random_bases read, when the module is training
        buf = ins[0]
        if _is_node(buf) and buf.op == "call_method" and buf.target == "clone":
            buf = buf.args[0]
        if not (_is_node(buf) and buf.op == "get_attr"):
            raise LoweringError("ema_update needs a buffer (a random_bases value) as its first argument", n["span"])
        training = b.fx.get_attr("training")
        return b.call(runtime.ema_update, (buf, ins[1], training, a["momentum"], a["dims"]))
    if op == "rand_like":
        return b.call(runtime.rand_like, (ins[0], a["last"]))
    if op == "if_training":
        return b.call(runtime.if_training, (ins[0], ins[1], b.fx.get_attr("training")))
    if op == "full_like":
        return b.call(torch.full_like, (ins[0], a["value"]))
    if op == "arange_like":
        return b.call(runtime.arange_like, (ins[0], a["dim"]))
    if op in BUFFERS:
        return _buffer(b, n)
    raise LoweringError(f"no lowering for op `{op}`", n["span"])


# constant tensors: op -> (runtime function, its arguments' attribute names); codegen writes the same call
BUFFERS = {
    "dct_filters": (runtime.dct_filters, ("channels", "height", "width", "freqs")),
    "eye": (runtime.eye, ("n",)),
    "triu_indices": (runtime.triu_flat, ("n", "offset")),
    "window_index": (runtime.window_index, ("h", "w", "mask_h", "mask_w")),
    "relative_position_index": (runtime.relative_position_index, ("h", "w")),
    "random_bases": (runtime.random_bases, ("shape", "std", "norm_dim")),
}


def _buffer(b: _Builder, n: dict):
    name = n["name"] or n["op"]
    base, k = name, 1
    while hasattr(b.root, name):
        name, k = f"{base}_{k}", k + 1
    fn, argnames = BUFFERS[n["op"]]
    b.root.register_buffer(name, fn(*[n["attrs"][k] for k in argnames]))
    b.buffers[name] = n
    return b.fx.get_attr(name)


def set_submodule(root: nn.Module, path: str, value) -> None:
    """root.<path> = value, creating ModuleDict/ParameterDict containers for `name.i` paths."""
    *parents, leaf = path.split(".")
    cur = root
    for p in parents:
        if not hasattr(cur, p):
            cur.add_module(p, nn.ParameterDict() if isinstance(value, nn.Parameter) else nn.ModuleDict())
        cur = getattr(cur, p)
    if isinstance(value, nn.Parameter):
        if isinstance(cur, nn.ParameterDict):
            cur[leaf] = value
        else:
            cur.register_parameter(leaf, value)
    elif isinstance(cur, nn.ModuleDict):
        cur[leaf] = value
    else:
        cur.add_module(leaf, value)


def layer_ranks(graph: Graph) -> dict:
    """Input rank of each layer's applications, where fixed and the same for all of them."""
    ranks: dict = {}
    for nid in graph.order():
        n = graph.node(nid)
        if n["op"] == "layer":
            shape = graph.node(n["inputs"][0])["shape"]
            r = None if split_pack(shape)[1] is not None else len(shape)
            prev = ranks.get(n["attrs"]["layer"], r)
            ranks[n["attrs"]["layer"]] = r if prev == r else None
    return ranks


def lower(graph: Graph, class_name: str = "AttentionBlock", check_inputs: bool = True) -> fx.GraphModule:
    """The fx module of an IR graph; `check_inputs` makes forward check its inputs' shapes first."""
    b = _Builder(graph)
    ranks = layer_ranks(graph)
    for name, decl in graph.layers.items():
        set_submodule(b.root, name, make_layer(decl.kind, decl.args, ranks.get(name)))
    env = {}
    for name, nid in graph.inputs:      # placeholders in the spec's order, then the input check
        env[nid] = b.fx.placeholder(name)
    if check_inputs:
        b.call(runtime.check_input_shapes, (input_layout(graph), *[env[nid] for _, nid in graph.inputs]),
               name="check_inputs")
    for nid in graph.order():
        n = graph.node(nid)
        b.current = n
        if n["op"] == "input":
            continue
        elif n["op"] == "param":
            env[nid] = b.fx.get_attr(n["attrs"]["layer"])
        elif n["op"] == "layer":
            env[nid] = b.node("call_module", n["attrs"]["layer"], (env[n["inputs"][0]],),
                              name=n["name"] or n["attrs"]["layer"].replace(".", "_"))
        else:
            env[nid] = lower_node(b, n, [env[i] for i in n["inputs"]])
    outs = [env[o] for _, o in graph.outputs]
    b.fx.output(outs[0] if len(outs) == 1 else tuple(outs))
    b.fx.lint()
    gm = fx.GraphModule(b.root, b.fx, class_name=class_name)
    gm.meta["ir"] = graph
    gm.meta["buffers"] = b.buffers
    return gm


# --- run-time input checks ------------------------------------------------------------------

SPATIAL_AXES = (1, 3)       # the axes a `*S` run may stand for: 1-D, 2-D and 3-D inputs
fx.node.has_side_effect(runtime.check_input_shapes)     # its node has no users: dead-code passes must keep it


@dataclass
class InputDim:
    """One declared axis of an input, as the check sees it."""
    value: object       # int: fixed by the parameters; str: a symbol ("B"), a run ("*S"), or a shown expression
    text: object        # the spec's text for it (an int, a name or an expression)
    params: tuple       # the parameters behind a fixed size, for the message


def input_dims(graph: Graph) -> list:
    """[(input name, [InputDim, ...])] from the input nodes' shapes and the spec's declared dims."""
    params = graph.meta.get("params", {})
    declared = graph.meta.get("input_dims", {})
    out = []
    for name, nid in graph.inputs:
        shape = graph.node(nid)["shape"]
        texts = declared.get(name) or [None] * len(shape)
        dims = []
        for d, text in zip(shape, texts):
            if isinstance(d, Pack):
                dims.append(InputDim(f"*{d.name}", text, ()))
            elif isinstance(d, int):
                dims.append(InputDim(d, text, _deps(text, params)))
            else:
                dims.append(InputDim(fmt_dim(d), text, ()))
        out.append((name, dims))
    return out


def _deps(text, params: dict) -> tuple:
    """Parameters a declared dim depends on, in order of appearance; of a conditional, the branch taken."""
    if not isinstance(text, str):
        return ()
    if text.isidentifier():
        return (text,) if text in params else ()
    found: list = []

    def walk(e):
        if isinstance(e, S.IfExp):
            walk(e.then if eval_static(e.cond, params.__getitem__, params) else e.orelse)
        elif isinstance(e, S.Var):
            if e.name in params and e.name not in found:
                found.append(e.name)
        elif isinstance(e, S.Node):
            for v in vars(e).values():
                for item in (v if isinstance(v, list) else [v]):
                    walk(item)
    walk(S.parse_expression(S.Source("<input>", text)))
    return tuple(found)


def input_layout(graph: Graph) -> dict:
    """The argument `runtime.check_input_shapes` takes: the spec's name and each input's declared axes."""
    params = graph.meta.get("params", {})
    entries = []
    for name, dims in input_dims(graph):
        pack = any(isinstance(d.value, str) and d.value.startswith("*") for d in dims)
        entries.append((name, tuple(d.value for d in dims),
                        tuple(tuple((k, params[k]) for k in d.params) for d in dims),
                        SPATIAL_AXES if pack else None))
    return {"spec": graph.meta.get("spec", "block"), "inputs": tuple(entries)}
