"""In-place gate mode: y = x * s written into the block's input x where nothing reads x afterwards.

A lowering option, not an IR pass (so not in `attndsl passes`): it rewrites the lowered fx graph,
where the order of execution is fixed. `attndsl.build(..., inplace=True)` and the generated
module's `inplace=True` turn it on. A fused `gate` node or a plain `mul` qualifies when its data
operand x is an input of the block (a placeholder) and every node computed from x other than through
this one runs before it and is no output (it may be a view of x: a `reshape` read later would see the
gated values). The check that no gradient is wanted, and that the result has x's shape and dtype,
happens at run time (`runtime.can_write_into`); otherwise the node computes out of place as before.
Like nn.ReLU(inplace=True), the mode destroys the caller's input tensor.

Apart from that mode, lowering always writes a ReLU into its operand where nothing else can see it
(`mark_fresh_relus`): the block's own intermediate, never an input.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from .. import runtime

# ops whose result is always a new tensor, never a view of an operand: what is computed from them
# cannot see x change (they must still run before the write)
_FRESH = {
    torch.mean,
    torch.sum,
    torch.amax,
    torch.amin,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    torch.cat,
    torch.softmax,
    F.hardswish,
    F.hardsigmoid,
    operator.add,
    operator.sub,
    operator.truediv,
    operator.mul,
}
_FRESH_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


def _fresh(u: fx.Node, root) -> bool:
    if u.op == "call_function":
        return u.target in _FRESH
    if u.op == "call_module" and root is not None:
        return isinstance(root.get_submodule(u.target), _FRESH_LAYERS)
    return False


def _only_reader_left(x: fx.Node, node: fx.Node, order: dict, outputs: set, root) -> bool:
    """Whether everything that reads x, or a view of it, except `node`, runs before `node` and is no output."""
    if x in outputs:
        return False
    seen, stack = set(), [x]
    while stack:
        for u in stack.pop().users:
            if u is node or u in seen or u.target is runtime.check_input_shapes:
                continue
            if order[u] > order[node] or u in outputs or u.op == "output":
                return False
            seen.add(u)
            if not _fresh(u, root):  # may be a view of x: its readers count too
                stack.append(u)
    return True


def inplace_nodes(graph: fx.Graph) -> tuple[dict, dict]:
    """({qualifying gate/mul node: index of the x it may write into}, counters), without changing the graph."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    out_node = next(n for n in graph.nodes if n.op == "output")
    outputs = set(out_node.all_input_nodes)
    found, counts = {}, {"gate": 0, "mul": 0, "input_read_later": 0}
    for n in graph.nodes:
        if n.op != "call_function" or n.target not in (runtime.gate, operator.mul):
            continue
        if n.target is operator.mul and not all(isinstance(a, fx.Node) for a in n.args[:2]):
            continue  # x * a constant is no gate
        for i in (0,) if n.target is runtime.gate else (0, 1):
            x = n.args[i]
            if not (isinstance(x, fx.Node) and x.op == "placeholder"):
                continue
            if not _only_reader_left(x, n, order, outputs, graph.owning_module):
                counts["input_read_later"] += 1
                continue
            found[n] = i
            counts["gate" if n.target is runtime.gate else "mul"] += 1
            break
    return found, counts


def inplace_call(node: fx.Node, slot: int, flag):
    """(target, args, kwargs) of the node's in-place form; `flag` is the inplace argument."""
    if node.target is runtime.gate:
        return runtime.gate, node.args, {**node.kwargs, "inplace": flag}
    # the product commutes: the operand written into goes first
    return runtime.mul_into, (node.args[slot], node.args[1 - slot]), {"inplace": flag}


def mark_inplace(gm: fx.GraphModule) -> dict:
    """Rewrite every qualifying gate/mul node of gm to its in-place form; counters of what was done."""
    found, counts = inplace_nodes(gm.graph)
    for n, slot in found.items():
        n.target, n.args, n.kwargs = inplace_call(n, slot, True)
    gm.recompile()
    return counts


# layers whose output is a new tensor that their backward does not read: a ReLU may overwrite it, in training too
_RELU_SAFE_LAYERS = (*_FRESH_LAYERS, nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def mark_fresh_relus(gm: fx.GraphModule) -> int:
    """Turn `torch.relu(t)` into `runtime.relu_fresh(t)` (in place when eager) where t is read by this relu
    only, is no output, and comes from a conv, linear or norm layer or a sum of two values: a new tensor
    whose backward needs neither t nor the relu's result beyond what relu_ saves. ResNeSt's conv-BN-ReLU
    then allocates as timm's does (inplace=True activations). Returns how many were rewritten."""
    outputs = set(next(n for n in gm.graph.nodes if n.op == "output").all_input_nodes)
    count = 0
    for n in gm.graph.nodes:
        if n.op != "call_function" or n.target is not torch.relu or len(n.args) != 1 or n.kwargs:
            continue
        t = n.args[0]
        if not isinstance(t, fx.Node) or len(t.users) != 1 or t in outputs:
            continue
        if t.op == "call_module":
            fresh = isinstance(gm.get_submodule(t.target), _RELU_SAFE_LAYERS)
        else:
            fresh = (
                t.op == "call_function"
                and t.target in (operator.add, operator.sub)
                and all(isinstance(a, fx.Node) for a in t.args[:2])
            )
        if fresh:
            n.target = runtime.relu_fresh
            count += 1
    if count:
        gm.recompile()
    return count
