"""Pictures of the IR: valid SVG, both stages, g/f parts, fused nodes, escaping, the CLI."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from attndsl.graph_svg import graph_svg
from attndsl.pipeline import compile_spec
from attndsl.registry import all_specs
from tests.helpers import spec_text

ROOT = Path(__file__).resolve().parents[1]
NS = "{http://www.w3.org/2000/svg}"


def _nodes(svg: str):
    root = ET.fromstring(svg)
    assert root.tag == NS + "svg"
    panels = [g for g in root.findall(NS + "g")]
    return root, [[n for n in p.findall(NS + "g") if "node" in n.get("class", "").split()] for p in panels]


@pytest.mark.parametrize("name, fused", [("non_local", 1), ("cbam", 2), ("senet", 1)])
def test_both_stages_and_fusions(name, fused):
    root, (before, after) = _nodes(graph_svg(name))
    c0, c1 = compile_spec(name, {"channels": 16}, passes=[]), compile_spec(name, {"channels": 16})
    assert len(before) == len(c0.graph) and len(after) == len(c1.graph)
    marked = [n for n in after if "fused" in n.get("class").split()]
    assert len(marked) == fused and not [n for n in before if "fused" in n.get("class").split()]
    ops = {"non_local": "attention", "cbam": "gate", "senet": "gate"}[name]
    assert all(ops in n.find(NS + "title").text for n in marked)
    # g and f are told apart, and the output of f is f's
    parts = {n.get("data-part") for n in before}
    assert {"input", "g", "f"} <= parts
    out = [n for n in before if len(n.findall(NS + "rect")) == 2]  # the double frame
    assert len(out) == 1 and out[0].get("data-part") == "f"
    assert root.find(NS + "title").text.startswith(name)


def test_every_spec_draws():
    for name in all_specs():
        ET.fromstring(graph_svg(name))


def test_one_stage_and_parts_by_line():
    _, panels = _nodes(graph_svg("senet", stages=["after"]))
    assert len(panels) == 1
    # senet's g computes s, f applies it: the gate is f's, the pooling g's
    parts = {n.find(NS + "title").text.split()[0]: n.get("data-part") for n in panels[0]}
    assert parts["y"] == "f" and parts["z"] == "g"


def test_spec_text_is_escaped(tmp_path):
    text = spec_text("y = x * sigmoid(s)", g="s = mean(x, dims=spatial, keepdim=true)")
    text = text.replace("title: Inline test spec", 'title: "A <b>bold</b> & \\"quoted\\" title"')
    p = tmp_path / "inline.yaml"
    p.write_text(text)
    svg = graph_svg(str(p))
    assert "<b>" not in svg
    assert ET.fromstring(svg).find(NS + "title").text == 'inline: A <b>bold</b> & "quoted" title'


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "attndsl", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_cli_graph(tmp_path):
    out = tmp_path / "g.svg"
    r = _cli("graph", "cbam", "-p", "channels=32", "-o", str(out))
    assert r.returncode == 0, r.stderr
    _, (before, after) = _nodes(out.read_text())
    assert len(after) < len(before)
    r = _cli("graph", "cbam", "-p", "channels=-3", "-o", str(tmp_path / "bad.svg"))
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad.svg").exists()
