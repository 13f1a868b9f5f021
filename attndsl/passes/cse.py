"""Common-subexpression elimination: one node for each distinct pure computation."""

from ..ops import OPS
from . import register

# batch norm in training updates its running statistics on every call: two calls are not one
_STATEFUL_LAYERS = ("batchnorm",)


def _key(graph, nid):
    n = graph.node(nid)
    op = n["op"]
    if op == "input":
        return None
    if op == "layer" and graph.layers[n["attrs"]["layer"]].kind in _STATEFUL_LAYERS:
        return None
    if op in OPS and not OPS[op].pure:
        return None
    key = (op, tuple(n["inputs"]), _freeze(n["attrs"]))
    try:
        hash(key)
    except TypeError:  # an attribute that cannot be compared: keep the node as it is
        return None
    return key


def _freeze(v):
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return (type(v).__name__, v)


@register("cse", "merge nodes that compute the same pure value from the same operands")
def cse(graph) -> dict:
    seen, merged = {}, 0
    for nid in graph.order():  # operands come first, so their merges are visible here
        key = _key(graph, nid)
        if key is None:
            continue
        if key in seen:
            keep = seen[key]
            if not graph.node(keep)["name"]:
                graph.node(keep)["name"] = graph.node(nid)["name"]
            graph.replace_uses(nid, keep)
            graph.remove(nid)
            merged += 1
        else:
            seen[key] = nid
    return {"merged": merged}
