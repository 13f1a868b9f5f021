"""Fold a batch norm into the conv/linear whose output it alone normalises (inference only).

In eval mode bn(conv(x)) = conv'(x) with w' = w * s, b' = (b - mean) * s + beta and
s = gamma / sqrt(var + eps), per output channel. The pass rewrites the IR: the BN node and
layer go, the conv gets a bias and a `fold` record (the BN's name and arguments, the conv's own
bias flag). The weights come later: `layers.make_layer` folds the fresh BN's statistics into the
fresh conv, and `fold_state_dict` folds a trained state dict of the unfolded module.

Not in the default pipeline: a folded module has no batch statistics, so in train mode it still
computes the eval-mode function. Left alone: a conv output read by anything besides the BN, a
conv or BN applied more than once (shared weights), a linear whose output is not [B, C] (BN
normalises axis 1, linear writes the last one), and layers a spec reads as parameters.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import AttnDSLError
from . import register

FOLDABLE = ("linear", "conv1d", "conv2d", "conv3d")


def _applications(graph) -> dict:
    """layer name -> ids of the nodes that apply it or read its parameters."""
    uses: dict = {}
    for nid in graph.order():
        n = graph.node(nid)
        if n["op"] in ("layer", "param"):
            uses.setdefault(n["attrs"]["layer"], []).append(nid)
    return uses


def _foldable(graph, bn_id, uses) -> int | None:
    """The conv node a BN node folds into, or None."""
    bn = graph.node(bn_id)
    conv_id = bn["inputs"][0]
    conv = graph.node(conv_id)
    if conv["op"] != "layer" or graph.n_uses(conv_id) != 1:
        return None
    cname, bname = conv["attrs"]["layer"], bn["attrs"]["layer"]
    decl = graph.layers[cname]
    if decl.kind not in FOLDABLE or "fold" in decl.args:
        return None
    if len(uses[cname]) != 1 or len(uses[bname]) != 1:
        return None
    if decl.kind == "linear" and len(conv["shape"]) != 2:
        return None
    return conv_id


@register("fold_bn", "inference only: conv/linear -> batchnorm (sole reader, unshared) -> one conv/linear")
def fold_bn(graph) -> dict:
    uses = _applications(graph)
    folded = skipped = 0
    for nid in graph.order():
        n = graph.node(nid) if nid in graph else None
        if n is None or n["op"] != "layer" or graph.layers[n["attrs"]["layer"]].kind != "batchnorm":
            continue
        conv_id = _foldable(graph, nid, uses)
        if conv_id is None:
            skipped += 1
            continue
        conv = graph.node(conv_id)
        cname, bname = conv["attrs"]["layer"], n["attrs"]["layer"]
        decl, bn = graph.layers[cname], graph.layers[bname]
        fold = {"bn": bname, "bn_args": dict(bn.args), "conv_bias": decl.args["bias"]}
        graph.layers[cname] = replace(decl, args={**decl.args, "bias": True, "fold": fold})
        if n["name"] and not conv["name"]:
            conv["name"] = n["name"]
        graph.replace(nid, conv_id)
        del graph.layers[bname]
        folded += 1
    return {"folded": folded, "skipped": skipped}


# --- weights ----------------------------------------------------------------------------------


def folded_weights(w, b, gamma, beta, mean, var, eps):
    """(w', b') of conv-then-BN in eval mode; computed in float64, returned in w's dtype."""
    import torch  # here: `import attndsl` stays torch-free

    dt = w.dtype
    w, mean, var = w.double(), mean.double(), var.double()
    b = torch.zeros_like(mean) if b is None else b.double()
    gamma = torch.ones_like(mean) if gamma is None else gamma.double()
    beta = torch.zeros_like(mean) if beta is None else beta.double()
    s = gamma / torch.sqrt(var + eps)
    return (w * s.reshape(-1, *[1] * (w.dim() - 1))).to(dt), ((b - mean) * s + beta).to(dt)


def fold_module(conv, bn) -> None:
    """Fold the BN module's current statistics into the conv/linear module, in place (adds a bias)."""
    import torch

    with torch.no_grad():
        w, b = folded_weights(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
        conv.weight.copy_(w)
        conv.bias = torch.nn.Parameter(b)


def fold_state_dict(graph, state_dict: dict) -> dict:
    """The folded module's state dict from a state dict of the unfolded module of the same spec."""
    sd = dict(state_dict)
    for cname, decl in graph.layers.items():
        fold = decl.args.get("fold")
        if not fold:
            continue
        bn = fold["bn"]
        w = sd.pop(f"{cname}.weight", None)
        b = sd.pop(f"{cname}.bias", None)
        stats = {k: sd.pop(f"{bn}.{k}", None) for k in ("weight", "bias", "running_mean", "running_var")}
        sd.pop(f"{bn}.num_batches_tracked", None)
        if w is None or stats["running_mean"] is None or stats["running_var"] is None:
            raise AttnDSLError(
                f"the state dict has no `{cname}.weight` or `{bn}.running_mean/var`",
                hint="pass the state dict of the unfolded module (built without inference=True)",
            )
        sd[f"{cname}.weight"], sd[f"{cname}.bias"] = folded_weights(
            w, b, stats["weight"], stats["bias"], stats["running_mean"], stats["running_var"], fold["bn_args"]["eps"]
        )
    return sd
