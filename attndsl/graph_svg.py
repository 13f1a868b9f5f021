"""Pictures of the IR as SVG, drawn here: no Graphviz or any other system tool.

Layout: one row per topological generation (networkx), nodes in a row ordered by the mean
position of their operands to keep edges short; edges are curves from operand to user.
Colours say where a node comes from: an input, the `g` program (generating the attention)
or the `f` program (applying it), by the spec line it was made from; nodes a pass created
are marked (fusions with a thick red frame). Outputs have a double frame. Every text from a
spec is XML-escaped. Entry points: `graph_svg`, `draw`.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

import networkx as nx

from .ir import Graph
from .shapes import fmt_shape

FUSED_OPS = ("attention", "gate")
COLOURS = {"input": "#e5e7eb", "g": "#dbeafe", "f": "#ffedd5", "pass": "#dcfce7"}
CHAR_W, ROW_H, BOX_H, GAP, PAD = 7.0, 64, 34, 16, 20
LEGEND = [
    ("input", "input"),
    ("g", "g: generates the attention"),
    ("f", "f: applies it"),
    ("pass", "other node made by a pass"),
]


@dataclass
class _Box:
    nid: int
    lines: tuple
    part: str
    fused: bool
    output: str | None
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0


def _part_of(spec, node) -> str | None:
    """g or f by the line of the spec the node was made from; None when it has no line there."""
    span = node["span"]
    if node["op"] == "input":
        return "input"
    if span is None or span.file != spec.path:
        return None
    for key, src in (("g", spec.g), ("f", spec.f)):
        if src is not None and src.line0 < span.line <= src.line0 + len(src.text.splitlines()):
            return key
    return None


def _label(graph: Graph, nid: int) -> tuple:
    n = graph.node(nid)
    a = n["attrs"]
    op = n["op"]
    if op == "layer":
        op = f"{a['layer']}: {graph.layers[a['layer']].kind}" if a["layer"] in graph.layers else a["layer"]
    elif op == "const":
        op = f"const {a['value']!r}" if not isinstance(a["value"], float) else f"const {a['value']:.4g}"
    elif op == "symsize":  # a run-time size read off the inputs
        op = f"size {a['expr']}"
    elif op == "input":
        op = f"input {a['name']}"
    elif op in ("gate",):
        op = f"gate {a['act']}" + (" (1+)" if a.get("plus_one") else "")
    head = f"{n['name']} = {op}" if n["name"] and op != f"input {n['name']}" else op
    shape = fmt_shape(n["shape"]) if n["dtype"] == "float" else n["dtype"]
    return head, shape


def _layout(graph: Graph, spec, created: set) -> tuple[list, float, float]:
    g = graph.g
    outs = {}
    for name, o in graph.outputs:
        outs.setdefault(o, name)
    boxes: dict = {}
    parts: dict = {}
    for nid in graph.order():  # operands first: a node without a line takes its operands' part
        p = _part_of(spec, graph.node(nid))
        if p is None:
            ins = [parts[i] for i in graph.node(nid)["inputs"] if parts.get(i) in ("g", "f")]
            p = "f" if "f" in ins else "g"
        parts[nid] = p
    rows = [sorted(r) for r in nx.topological_generations(g)]
    width = 0.0
    for depth, row in enumerate(rows):
        if depth:  # barycentre of the operands' positions
            row.sort(
                key=lambda n: (sum(boxes[p].x for p in g.predecessors(n)) / max(1, len(list(g.predecessors(n)))), n)
            )
        x = PAD
        for nid in row:
            lines = _label(graph, nid)
            fused = nid in created and graph.node(nid)["op"] in FUSED_OPS
            part = "pass" if nid in created and not fused else parts[nid]  # a fusion keeps its part's colour
            b = _Box(nid, lines, part, fused, outs.get(nid))
            b.w = max(len(lines[0]), len(lines[1]) + (len(b.output) + 3 if b.output else 0)) * CHAR_W + 16
            b.x, b.y = x + b.w / 2, PAD + 40 + depth * ROW_H + BOX_H / 2
            x += b.w + GAP
            boxes[nid] = b
        width = max(width, x)
    height = PAD + 40 + len(rows) * ROW_H + PAD
    return list(boxes.values()), width + PAD, height


def draw(graph: Graph, spec, title: str, created: set = frozenset(), dx: float = 0.0) -> tuple[list, float, float]:
    """SVG elements of one graph, shifted right by dx; returns (elements, width, height)."""
    boxes, w, h = _layout(graph, spec, created)
    w = max(w, 2 * PAD + len(title) * CHAR_W * 14 / 11)  # the title is set larger than the nodes
    at = {b.nid: b for b in boxes}
    out = [
        f'<g transform="translate({dx:.1f},0)">',
        f'<text x="{PAD}" y="{PAD + 14}" class="title">{escape(title)}</text>',
    ]
    for src, dst, _slot in graph.g.edges(keys=True):
        a, b = at[src], at[dst]
        y0, y1 = a.y + BOX_H / 2, b.y - BOX_H / 2
        mid = (y0 + y1) / 2
        out.append(
            f'<path d="M{a.x:.1f},{y0:.1f} C{a.x:.1f},{mid:.1f} {b.x:.1f},{mid:.1f} {b.x:.1f},{y1:.1f}" '
            f'class="edge" marker-end="url(#arrow)"/>'
        )
    for b in boxes:
        x0, y0 = b.x - b.w / 2, b.y - BOX_H / 2
        cls = "node fused" if b.fused else "node"
        tip = escape(" ".join(b.lines) + (" (fused by a pass)" if b.fused else ""))
        out.append(f'<g class="{cls}" data-part="{b.part}"><title>{tip}</title>')
        out.append(
            f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{b.w:.1f}" height="{BOX_H}" rx="5" fill="{COLOURS[b.part]}"/>'
        )
        if b.output:
            out.append(
                f'<rect x="{x0 - 3:.1f}" y="{y0 - 3:.1f}" width="{b.w + 6:.1f}" height="{BOX_H + 6}" '
                f'rx="7" class="output"/>'
            )
        out.append(f'<text x="{b.x:.1f}" y="{b.y - 3:.1f}">{escape(b.lines[0])}</text>')
        out.append(
            f'<text x="{b.x:.1f}" y="{b.y + 11:.1f}" class="shape">{escape(b.lines[1])}'
            + (f" \u2192 {escape(b.output)}" if b.output else "")
            + "</text></g>"
        )
    out.append("</g>")
    return out, w, h


_STYLE = """
text { font-family: monospace; font-size: 11px; text-anchor: middle; fill: #111827; }
text.title { font-size: 14px; font-weight: bold; text-anchor: start; }
text.legend { text-anchor: start; }
text.shape { fill: #4b5563; font-size: 10px; }
.node rect { stroke: #374151; stroke-width: 1; }
.node.fused rect { stroke: #dc2626; stroke-width: 3; }
rect.output { fill: none; stroke: #374151; stroke-width: 1; }
.edge { fill: none; stroke: #6b7280; stroke-width: 1.2; }
"""


def graph_svg(spec, params: dict | None = None, passes=None, stages=None) -> str:
    """The spec's IR before and after passes (or the stages named: "before", "after") side by side, as SVG."""
    from .pipeline import compile_spec, load

    s = load(spec)
    params = {**(s.example.get("params") or {}), **(params or {})}
    stages = list(dict.fromkeys(stages or ("before", "after")))
    before = compile_spec(s, params, passes=[])
    after = compile_spec(s, params, passes)
    frontend_ids = set(before.graph.g.nodes)
    created = {n for n in after.graph.g.nodes if n not in frontend_ids}
    n_fused = sum(1 for n in created if after.graph.node(n)["op"] in FUSED_OPS)
    panels = {
        "before": (before.graph, f"before passes: {len(before.graph)} nodes", set()),
        "after": (
            after.graph,
            f"after {', '.join(after.stats) or 'no passes'}: {len(after.graph)} nodes, {n_fused} fused",
            created,
        ),
    }
    body, x, height = [], 0.0, 0.0
    for st in stages:
        graph, title, made = panels[st]
        els, w, h = draw(graph, s, title, made, x)
        body += els
        x, height = x + w, max(height, h)
    legend_y = height + 4
    lx = PAD
    for key, text in LEGEND:
        body.append(f'<rect x="{lx}" y="{legend_y}" width="14" height="14" fill="{COLOURS[key]}" stroke="#374151"/>')
        body.append(f'<text x="{lx + 20}" y="{legend_y + 11}" class="legend">{escape(text)}</text>')
        lx += 28 + len(text) * CHAR_W
    body.append(
        f'<rect x="{lx}" y="{legend_y}" width="14" height="14" fill="#ffffff" stroke="#dc2626" '
        f'stroke-width="3"/><text x="{lx + 20}" y="{legend_y + 11}" class="legend">fused node</text>'
    )
    width, height = max(x, lx + 120), legend_y + 24
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">\n<title>{escape(s.name)}: {escape(s.title)}</title>\n'
        f'<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>\n'
        f"<style>{_STYLE}</style>\n"
    )
    return head + "\n".join(body) + "\n</svg>\n"
