"""The docs site: one generated page per spec, the cost table, and a strict mkdocs build."""

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from attndsl.pipeline import load
from attndsl.registry import all_specs
from tests.helpers import spec_text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import docgen  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The docs folder with its generated pages, built once for this module."""
    docs = tmp_path_factory.mktemp("docs")
    for f in (ROOT / "docs").glob("*.md"):
        if f.name != "costs.md":
            shutil.copy(f, docs / f.name)
    docgen.generate(docs)
    return docs


def test_one_page_per_spec(site):
    specs = all_specs()
    assert {p.stem for p in (site / "specs").glob("*.md")} - {"index"} == set(specs)
    for name, path in specs.items():
        spec, page = load(path), (site / "specs" / f"{name}.md").read_text()
        assert page.startswith(f"# {docgen.esc(name)}: ")
        for section in ("## Paper and code", "## Parameters", "## Cost", "## Graph", "## Spec"):
            assert section in page, (name, section)
        assert docgen.esc(spec.paper) in page
        if spec.code.startswith("http"):
            assert f"]({spec.code})" in page
        # the spec's source, whole, in a fenced block
        assert "\n".join(spec.lines).rstrip() in page
        ET.parse(site / "specs" / f"{name}.svg")
        assert f"]({name}.svg)" in page


def test_reference_choices_reach_the_pages(site):
    cbam = (site / "specs" / "cbam.md").read_text()
    assert "Paper and official code disagree" in cbam and "ChannelPool" in cbam
    assert "(max, mean)" in cbam  # from the spec's notes as well
    assert "`s_c`, `s_s`" in cbam


def test_cost_table_covers_every_spec(site):
    from attndsl.costs import profile

    table = (site / "costs.md").read_text()
    rows = [r for r in table.splitlines() if r.startswith("| [")]
    assert len(rows) == len(all_specs())
    senet = next(r for r in rows if r.startswith("| [senet]"))
    p = profile("senet", {"x": [1, 256, 56, 56]}, channels=256)
    assert "| standard |" in senet and f"| {p.n_params:,} |" in senet
    assert re.search(r"\| \[tam\]\(specs/tam.md\) \| temporal \| example: x \[2, 64, 8, 7, 7\]", table)
    for family in ("matmul", "softmax", "pool", "elementwise"):
        assert f"| {family} |" in table


def test_spec_text_is_escaped(tmp_path):
    p = tmp_path / "inline.yaml"
    p.write_text(
        spec_text("y = x * s", g="s = sigmoid(mean(x, dims=spatial, keepdim=true))").replace(
            "title: Inline test spec", 'title: "<script>alert(1)</script> | *x*"'
        )
    )
    spec = load(str(p))
    prof, label = docgen.standard_case(spec)
    page = docgen.spec_page("inline", spec, prof, label, [])
    head = page.splitlines()[0]
    assert "<script>" not in head and "&lt;script&gt;" in head and "|" not in head and "*x*" not in head
    assert label == "standard" and prof.shapes == {"x": [1, 256, 56, 56]}


def test_mkdocs_build_strict(tmp_path):
    import mkdocs  # noqa: F401  (in the test extra: the build below runs it)

    docs = tmp_path / "docs"
    docs.mkdir()
    for f in (ROOT / "docs").glob("*.md"):
        if f.name != "costs.md":
            shutil.copy(f, docs / f.name)
    cfg = (
        (ROOT / "mkdocs.yml")
        .read_text()
        .replace("docs_dir: docs", f"docs_dir: {docs}")
        .replace("tools/docgen.py", str(ROOT / "tools" / "docgen.py"))
    )
    (tmp_path / "mkdocs.yml").write_text(cfg)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(tmp_path / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((tmp_path / "site" / "specs").glob("*/index.html"))) == len(all_specs())
    assert (tmp_path / "site" / "specs" / "cbam.svg").is_file()
    assert "<svg" not in (tmp_path / "site" / "specs" / "cbam" / "index.html").read_text()[:200]
