"""Generate the docs site's pages: one per spec, the spec index, and the cost table of all specs.

    python tools/docgen.py            # writes docs/specs/*.md, docs/specs/*.svg, docs/costs.md
    mkdocs build --strict             # runs this first itself (mkdocs.yml: hooks)

The pages are regenerated on every build and kept out of git: specs change on every branch, and a
page made in the build cannot go stale. Each spec page: title, family, paper and code links, the
notes (paper-vs-code choices) and the matching entries of tests/reference/README.md, parameters,
inputs, outputs and maps, the cost at the standard shape, the graph (attndsl's own SVG), and the
spec source. Every text taken from a spec is HTML-escaped. Entry points: `generate`, `on_config` (the mkdocs hook).
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
STANDARD = {"channels": 256, "x": [1, 256, 56, 56]}  # the feature shape of the cost table
FAMILY_NAMES = {
    "channel": "channel",
    "spatial": "spatial",
    "temporal": "temporal",
    "branch": "branch",
    "channel_spatial": "channel & spatial",
    "spatial_temporal": "spatial & temporal",
    "transformer": "vision-transformer attention",
    "modulation": "modulation",
}


def esc(text) -> str:
    """Plain text from a spec as Markdown-safe HTML: no tag, entity or table cell survives from it."""
    return (
        html.escape(str(text), quote=False)
        .replace("|", "&#124;")
        .replace("*", "&#42;")
        .replace("_", "&#95;")
        .replace("`", "&#96;")
        .replace("[", "&#91;")
        .replace("\n", " ")
    )


def code(text) -> str:
    """Inline code that no backtick in the text can end."""
    t = str(text)
    fence = "`" * (max((len(m) for m in re.findall(r"`+", t)), default=0) + 1)
    pad = " " if t.startswith("`") or t.endswith("`") else ""
    return f"{fence}{pad}{t}{pad}{fence}"


def fenced(text: str, lang: str) -> str:
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}\n"


def link(url: str) -> str:
    if re.fullmatch(r"https?://[^\s<>\"'()]+", url or ""):
        return f"[{esc(url)}]({url})"
    return esc(url)


def standard_case(spec):
    """(params, shapes, label): channels 256 at 1 x 256 x 56 x 56 where the spec takes one such
    feature map, else its example."""
    from attndsl.costs import profile
    from attndsl.errors import AttnDSLError

    ex_params, ex_inputs = dict(spec.example.get("params") or {}), dict(spec.example.get("inputs") or {})
    decl = spec.inputs.get("x")
    if (
        list(spec.inputs) == ["x"]
        and "channels" in spec.params
        and decl
        and decl[:2] == ["B", "channels"]
        and (len(decl) == 4 or (len(decl) == 3 and str(decl[2]).startswith("*")))
    ):
        params = {**ex_params, "channels": STANDARD["channels"]}
        try:
            return profile(spec, {"x": STANDARD["x"]}, **params), "standard"
        except AttnDSLError:
            pass
    return profile(spec, ex_inputs, **ex_params), "example"


def reference_notes(readme: Path) -> dict:
    """spec name -> [(section, bullet text)] from the `- **name**` bullets of tests/reference/README.md."""
    out: dict = {}
    if not readme.is_file():
        return out
    section, current = "", None
    for line in readme.read_text().splitlines():
        if line.startswith("#### "):
            section, current = line[5:].strip(), None
            continue
        m = re.match(r"- \*\*([a-z0-9_]+)\*\*\s*[:—-]?\s*(.*)", line)
        if m:
            current = [section, m.group(2)]
            out.setdefault(m.group(1), []).append(current)
        elif current is not None and line.startswith("  ") and line.strip():
            current[1] += " " + line.strip()
        elif not line.strip() or line.startswith("#"):
            current = None
    return out


def _md_inline(text: str) -> str:
    """Reference-README prose keeps its **bold** and `code`; everything else is escaped."""
    parts = re.split(r"(`[^`]+`|\*\*[^*]+\*\*)", text)
    out = []
    for p in parts:
        if p.startswith("`") and p.endswith("`") and len(p) > 1:
            out.append(code(p[1:-1]))
        elif p.startswith("**") and p.endswith("**"):
            out.append(f"<strong>{html.escape(p[2:-2], quote=False)}</strong>")
        else:
            out.append(esc(p))
    return "".join(out)


def fmt_default(p) -> str:
    if not p.has_default:
        return "required"
    from attndsl.syntax import Source

    return code(p.default.text if isinstance(p.default, Source) else repr(p.default))


def spec_page(name, spec, prof, label, refs) -> str:
    import yaml

    from attndsl.attnmaps import map_names
    from attndsl.costs import human, human_bytes

    data = yaml.safe_load("\n".join(spec.lines)) or {}
    shapes = ", ".join(f"{esc(k)} = [{', '.join(map(str, v))}]" for k, v in prof.shapes.items())
    lines = [
        f"# {esc(name)}: {esc(spec.title)}",
        "",
        f"**Family:** {esc(FAMILY_NAMES.get(spec.family, spec.family))}  ",
        f"**Paper:** {esc(spec.paper)}  ",
        f"**Code:** {link(spec.code) if spec.code else 'none public'}",
        "",
    ]
    lines += ["## Paper and code", ""]
    if data.get("notes"):
        lines += [esc(data["notes"]), ""]
    for section, text in refs:
        lines.append(f"- *{esc(section)}*: {_md_inline(text)}")
    if refs:
        lines.append("")
    if not data.get("notes") and not refs:
        lines += ["No choices recorded.", ""]
    lines += ["## Parameters", "", "| name | type | default | meaning |", "|---|---|---|---|"]
    for p in spec.params.values():
        lines.append(f"| {code(p.name)} | {esc(p.type)} | {fmt_default(p)} | {esc(p.doc)} |")
    if not spec.params:
        lines.append("| (none) | | | |")
    lines += [
        "",
        "## Inputs, outputs, maps",
        "",
        "- inputs: "
        + ", ".join(f"{code(k)} {code('[' + ', '.join(map(str, v)) + ']')}" for k, v in spec.inputs.items()),
        "- outputs: " + ", ".join(code(o) for o in spec.outputs),
        "- attention maps (`attndsl.capture`): " + (", ".join(code(m) for m in map_names(spec)) or "none"),
        "",
        "## Cost",
        "",
        f"At {shapes} ({'the standard feature shape' if label == 'standard' else 'the spec example'}), "
        "parameters " + ", ".join(f"{esc(k)}={esc(repr(v))}" for k, v in prof.params.items()) + ":",
        "",
        "| learned parameters | FLOPs | MACs | counted by torch | peak activations | saved for backward |",
        "|---|---|---|---|---|---|",
        f"| {prof.n_params:,} | {human(prof.flops)} | {human(prof.macs)} | {human(prof.torch_flops)} | "
        f"{human_bytes(prof.peak_bytes)} | "
        f"{human_bytes(prof.saved_bytes) if prof.saved_bytes is not None else 'n/a'} |",
        "",
        "See [costs](../costs.md) for the counting conventions.",
        "",
        "## Graph",
        "",
        f"The IR at the spec example, before and after the default passes (`attndsl graph {esc(name)}`): "
        "blue nodes generate the attention (`g`), orange ones apply it (`f`), red frames mark fusions.",
        "",
        f"![IR of {esc(name)}]({name}.svg)",
        "",
        "## Spec",
        "",
        fenced("\n".join(spec.lines), "yaml"),
    ]
    return "\n".join(lines)


def costs_page(rows) -> str:
    from attndsl.costs import FAMILIES, human, human_bytes

    lines = [
        "# Costs of every spec",
        "",
        "Generated by `tools/docgen.py` with `attndsl.profile` (the same numbers as `attndsl profile`). "
        f"Standard shape: channels {STANDARD['channels']}, input 1 x 256 x 56 x 56 (float32); a spec that "
        "takes other inputs is measured at its example (the *shape* column says which).",
        "",
        "| spec | family | shape | learned params | FLOPs | MACs | counted by torch | peak activations | "
        "saved for backward |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, spec, p, label in rows:
        shape = (
            "standard"
            if label == "standard"
            else "example: " + "; ".join(f"{esc(k)} [{', '.join(map(str, v))}]" for k, v in p.shapes.items())
        )
        lines.append(
            f"| [{esc(name)}](specs/{name}.md) | {esc(FAMILY_NAMES.get(spec.family, spec.family))} | "
            f"{shape} | {p.n_params:,} | {human(p.flops)} | {human(p.macs)} | {human(p.torch_flops)} | "
            f"{human_bytes(p.peak_bytes)} | "
            f"{human_bytes(p.saved_bytes) if p.saved_bytes is not None else 'n/a'} |"
        )
    lines += [
        "",
        "## How FLOPs are counted",
        "",
        "A node's FLOPs are the count of `torch.utils.flop_counter.FlopCounterMode` where torch counts its "
        "op (matrix products, convolutions, attention), else attndsl's own count by op family. The two "
        "agree wherever torch counts (tested on every spec). MACs are the multiply-accumulate families' "
        "FLOPs halved. *Peak activations*: the most bytes of intermediate tensors alive at once in a "
        "forward (inputs, parameters and buffers excluded; views share their base). *Saved for backward*: "
        "what autograd keeps in one training-mode forward (parameters excluded; n/a where training mode "
        "cannot run at batch 1, e.g. batch norm over one value per channel).",
        "",
        "| op family | counted as | multiply-accumulate |",
        "|---|---|---|",
    ]
    for fam, (rule, mac) in FAMILIES.items():
        lines.append(f"| {fam} | {esc(rule)} | {'yes' if mac else 'no'} |")
    return "\n".join(lines) + "\n"


def generate(docs: Path = DOCS) -> list:
    """Write every generated page; returns the paths written."""
    sys.path.insert(0, str(ROOT))
    from attndsl.graph_svg import graph_svg
    from attndsl.pipeline import load
    from attndsl.registry import all_specs

    out_dir = docs / "specs"
    out_dir.mkdir(parents=True, exist_ok=True)
    refs = reference_notes(ROOT / "tests" / "reference" / "README.md")
    written, rows = [], []
    for name, path in all_specs().items():
        spec = load(path)
        prof, label = standard_case(spec)
        rows.append((name, spec, prof, label))
        (out_dir / f"{name}.svg").write_text(graph_svg(spec))
        (out_dir / f"{name}.md").write_text(spec_page(name, spec, prof, label, refs.get(name, [])))
        written += [out_dir / f"{name}.svg", out_dir / f"{name}.md"]
    index = [
        "# Specs",
        "",
        f"All {len(rows)} mechanisms, one generated page each.",
        "",
        "| spec | family | title |",
        "|---|---|---|",
    ]
    index += [
        f"| [{esc(n)}]({n}.md) | {esc(FAMILY_NAMES.get(s.family, s.family))} | {esc(s.title)} |" for n, s, _, _ in rows
    ]
    (out_dir / "index.md").write_text("\n".join(index) + "\n")
    (docs / "costs.md").write_text(costs_page(rows))
    return written + [out_dir / "index.md", docs / "costs.md"]


def on_config(config, **kwargs):
    """mkdocs hook: regenerate the pages before the build collects its files, and list each spec page in
    the nav under `Specs` (so a spec without a page, or a page without a spec, is a strict-mode warning)."""
    generate(Path(config["docs_dir"]))
    from attndsl.registry import all_specs

    pages = ["specs/index.md"] + [{name: f"specs/{name}.md"} for name in all_specs()]
    config["nav"] = [({"Specs": pages} if isinstance(e, dict) and "Specs" in e else e) for e in config["nav"] or []]
    return config


if __name__ == "__main__":
    print(f"wrote {len(generate())} files under {DOCS}")
