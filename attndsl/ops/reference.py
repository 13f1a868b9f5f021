"""The op reference, generated from the registry: `attndsl ops` prints it, docs/language.md embeds it."""

from __future__ import annotations

from .registry import LAYERS, OPS

# family file -> heading, in the order the reference lists them
FAMILIES = {
    "elementwise": "Elementwise and masks",
    "reductions": "Reductions and normalisations",
    "layout": "Layout",
    "products": "Products and convolution by a tensor",
    "pooling": "Pooling",
    "sampling": "Sampling and indexing",
    "constants": "Constants",
    "state": "Gradient, state and mode",
    "fused": "Fused (made by passes, usable directly)",
}


def ops_by_family() -> dict:
    """family -> [OpDef] sorted by name, families in FAMILIES order (any other family after them)."""
    out: dict = {f: [] for f in FAMILIES}
    for d in sorted(OPS.values(), key=lambda d: d.name):
        out.setdefault(d.family, []).append(d)
    return {f: ds for f, ds in out.items() if ds}


def ops_text() -> str:
    """What `attndsl ops` prints: every op and layer with its signature and doc, ops grouped by family."""
    lines = []
    for fam, defs in ops_by_family().items():
        lines.append(f"{FAMILIES.get(fam, fam)} ({fam}.py):")
        lines += [f"  {d.name}{d.signature}  {d.doc}" for d in defs]
    lines.append("layers (layer_rules.py):")
    lines += [f"  {d.name}{d.signature}  {d.doc}" for d in sorted(LAYERS.values(), key=lambda d: d.name)]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown() -> str:
    """The op reference section of docs/language.md: one table per family, one row per name."""
    out = []
    for fam, defs in ops_by_family().items():
        out += [f"#### {FAMILIES.get(fam, fam)} (`attndsl/ops/{fam}.py`)", "", "| op | doc |", "| --- | --- |"]
        out += [f"| `{_md(d.name + str(d.signature))}` | {_md(d.doc)} |" for d in defs]
        out.append("")
    out += ["#### Layers (`attndsl/ops/layer_rules.py`)", "", "| layer | doc |", "| --- | --- |"]
    layers = sorted(LAYERS.values(), key=lambda d: d.name)
    out += [f"| `{_md(d.name + str(d.signature))}` | {_md(d.doc)} |" for d in layers]
    return "\n".join(out) + "\n"
