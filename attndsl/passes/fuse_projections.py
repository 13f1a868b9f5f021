"""Horizontal fusion: parallel projections of one input become one product and a split.

q = fq(x), k = fk(x), v = fv(x) with fq, fk, fv linear layers (or 2-D convolutions with the same
kernel, stride, padding and dilation, groups 1) become
    W = concat([fq.weight, fk.weight, fv.weight]); y = x @ W^T + concat(biases)   (conv: conv2d)
    q, k, v = split(y, [out_q, out_k, out_v])
The layers stay as they are (same parameter names, same state dict: checkpoints load); the
weights are concatenated at run time, which costs one copy of the weights per call.
Grouped: layer applications whose input is the same node, of the same kind and input width,
all with or all without bias. Left alone: one projection alone, grouped convolutions (their
concatenated output channels would not be grouped the same way), conv1d/conv3d (no functional
op in the IR), linears over a `*S` run of axes (matmul needs a fixed rank), folded layers
(fold_bn), and a layer's `param` reads elsewhere are not affected.

Not in the default pipeline: measured on CPU (benchmarks/RESULTS.md, "fuse_projections") it
does not pay for the weight copy at real sizes; it is there for the cases where it does.
"""

from ..ops import T
from ..ops.layout import concat, split, transpose
from ..ops.products import conv2d_fn, matmul
from ..shapes import split_pack
from . import register

_CONV_KEYS = ("kernel", "stride", "padding", "dilation")


def _key(graph, nid):
    """What must agree for two layer applications to share one product, or None if this one cannot."""
    n = graph.node(nid)
    if n["op"] != "layer":
        return None
    decl = graph.layers[n["attrs"]["layer"]]
    if "fold" in decl.args:
        return None
    if decl.kind == "linear":
        shape = graph.node(n["inputs"][0])["shape"]
        if len(shape) < 2 or split_pack(shape)[1] is not None:  # a matmul needs a fixed rank
            return None
        return ("linear", decl.args["in_features"], decl.args["bias"])
    if decl.kind == "conv2d" and decl.args["groups"] == 1:
        return ("conv2d", decl.args["in_channels"], decl.args["bias"]) + tuple(decl.args[k] for k in _CONV_KEYS)
    return None


def _add(graph, out, op, span, name=None):
    """A node from an op's shape rule result (`Out`): the same attributes the frontend would record."""
    ins = [t.nid for t in out.inputs]
    if out.n_outputs:
        nid = graph.add(op, ins, out.attrs, None, dtype="tuple", span=span)
        return [graph.add("getitem", [nid], {"index": i}, s, span=span) for i, s in enumerate(out.shapes)]
    return graph.add(op, ins, out.attrs, out.shape, span=span, name=name)


def _t(graph, nid):
    return T(nid, graph.node(nid)["shape"])


def _params(graph, names, attr, span):
    """concat of the layers' `attr` tensors along axis 0."""
    ids = []
    for name in names:
        decl = graph.layers[name]
        shape = (
            (decl.args["out_features"], decl.args["in_features"])
            if decl.kind == "linear"
            else (decl.args["out_channels"], decl.args["in_channels"]) + tuple(decl.args["kernel"])
        )
        ids.append(
            graph.add("param", [], {"layer": name, "attr": attr}, shape[:1] if attr == "bias" else shape, span=span)
        )
    return _add(graph, concat([_t(graph, i) for i in ids], dim=0), "concat", span)


def _fuse(graph, group) -> None:
    nodes = [graph.node(i) for i in group]
    names = [n["attrs"]["layer"] for n in nodes]
    kind, bias = graph.layers[names[0]].kind, graph.layers[names[0]].args["bias"]
    x, span = nodes[0]["inputs"][0], nodes[0]["span"]
    w = _params(graph, names, "weight", span)
    b = _params(graph, names, "bias", span) if bias else None
    if kind == "linear":
        wt = _add(graph, transpose(_t(graph, w), -2, -1), "transpose", span)
        y = _add(graph, matmul(_t(graph, x), _t(graph, wt)), "matmul", span)
        if b is not None:
            y = graph.add("add", [y, b], {}, graph.node(y)["shape"], span=span)
        dim = len(graph.node(y)["shape"]) - 1
        sizes = [graph.layers[n].args["out_features"] for n in names]
    else:
        a = graph.layers[names[0]].args
        y = _add(
            graph,
            conv2d_fn(
                _t(graph, x),
                _t(graph, w),
                None if b is None else _t(graph, b),
                stride=a["stride"],
                padding=a["padding"],
                dilation=a["dilation"],
            ),
            "conv2d_fn",
            span,
        )
        dim = 1
        sizes = [graph.layers[n].args["out_channels"] for n in names]
    parts = _add(graph, split(_t(graph, y), sizes, dim=dim), "split", span)
    for old, new in zip(group, parts):
        if graph.node(old)["name"]:
            graph.node(new)["name"] = graph.node(old)["name"]
        graph.replace(old, new)


@register(
    "fuse_projections",
    "not default: parallel linears/1-group conv2ds of one input -> one product "
    "over run-time concatenated weights, and a split",
)
def fuse_projections(graph) -> dict:
    fused = projections = 0
    for nid in graph.order():
        if nid not in graph:
            continue
        groups: dict = {}
        for u in graph.users(nid):
            if graph.node(u)["op"] == "layer" and graph.node(u)["inputs"] == [nid]:
                key = _key(graph, u)
                group = groups.setdefault(key, []) if key is not None else None
                # one layer applied twice to one input is cse's to merge, not a wider product
                if group is not None and all(graph.node(o)["attrs"] != graph.node(u)["attrs"] for o in group):
                    group.append(u)
        for group in groups.values():
            if len(group) > 1:
                _fuse(graph, sorted(group))
                fused += 1
                projections += len(group)
    return {"fused": fused, "projections": projections}
