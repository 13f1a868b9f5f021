"""Dead-code elimination: drop nodes no output depends on, and layers no node uses."""

import networkx as nx

from . import register


@register("dce", "remove nodes that no output depends on, and the layers they alone used")
def dce(graph) -> dict:
    live = set(graph.output_ids())
    for o in list(live):
        live |= nx.ancestors(graph.g, o)
    live |= {nid for _, nid in graph.inputs}  # inputs stay: they are the forward's signature
    dead = [n for n in reversed(graph.order()) if n not in live]
    for n in dead:
        graph.g.remove_node(n)
    used = {graph.node(n)["attrs"].get("layer") for n in graph.g if graph.node(n)["op"] in ("layer", "param")}
    unused = [name for name in graph.layers if name not in used]
    for name in unused:
        del graph.layers[name]
    return {"nodes_removed": len(dead), "layers_removed": len(unused)}
