"""The op registry: one entry per op (shape rule, doc and lowering together), and what is generated from it.

Every op has a lowering; `attndsl ops` and the reference in docs/language.md come from the entries
(each name its own doc line, the whole first paragraph); generated code spells torch callables by
looking them up; and adding an op is one `@op` + `@lowering` pair, seen end to end here.
"""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import attndsl
from attndsl import cli, runtime
from attndsl.check import load_generated
from attndsl.errors import AttnDSLError, LoweringError
from attndsl.lowering import BUFFERS, lower, lower_node, source_name
from attndsl.ops import FAMILIES, LAYERS, OPS, Out, lowering, need_tensor, op, reference_markdown
from attndsl.ops.registry import first_paragraph
from attndsl.pipeline import compile_spec
from tests.helpers import graph, inline_spec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import opdocs  # noqa: E402


def test_every_op_has_a_lowering_and_a_family_file():
    for name, d in OPS.items():
        assert callable(d.lower), name
        assert d.family in FAMILIES, (name, d.family)
        assert (ROOT / "attndsl" / "ops" / f"{d.family}.py").is_file()
        assert d.doc and "\n" not in d.doc, name


def test_shared_rules_give_each_name_its_own_doc():
    assert OPS["softmax"].fn is OPS["log_softmax"].fn
    assert OPS["log_softmax"].doc != OPS["softmax"].doc and "Log" in OPS["log_softmax"].doc
    for group in (
        ("max", "min"),
        ("var", "std"),
        ("adaptive_avg_pool", "adaptive_max_pool"),
        ("relu", "tanh"),
        ("add", "mul"),
        ("sum", "mean"),
    ):
        assert len({OPS[n].doc for n in group}) == len(group), group


def test_cli_ops_prints_whole_first_paragraphs_grouped_by_family(capsys):
    assert cli.main(["ops"]) == 0
    out = capsys.readouterr().out
    # window_index's first paragraph spans two source lines; nothing is cut
    assert first_paragraph(OPS["window_index"].fn.__doc__) in out
    assert "(PSANet's PSAMask)" in out
    assert f"log_softmax{OPS['log_softmax'].signature}  {OPS['log_softmax'].doc}" in out
    heads = [line for line in out.splitlines() if not line.startswith(" ")]
    assert heads == [f"{FAMILIES[f]} ({f}.py):" for f in FAMILIES] + ["layers (layer_rules.py):"]
    for name in list(OPS) + list(LAYERS):
        assert f"  {name}(" in out, name
    # each op is listed under the heading of its own file
    section = out.split("Layout (layout.py):")[1].split("\n\n")[0].split("Products")[0]
    assert "  transpose(" in section and "  softmax(" not in section


def test_docs_reference_is_the_generated_one():
    text = opdocs.LANGUAGE.read_text()
    assert opdocs.rendered(text) == text, "docs/language.md is stale: run python tools/opdocs.py"
    _, section, _ = opdocs.split(text)
    assert section.strip() == reference_markdown().strip()
    for name in OPS:
        assert f"| `{name}(" in section, name


def test_docs_check_detects_a_stale_reference(tmp_path, monkeypatch):
    stale = tmp_path / "language.md"
    stale.write_text(opdocs.LANGUAGE.read_text().replace("| `relu(x)` |", "| `relu(x, y)` |"))
    monkeypatch.setattr(opdocs, "LANGUAGE", stale)
    assert opdocs.main(["--check"]) == 1
    assert opdocs.main([]) == 0 and opdocs.main(["--check"]) == 0
    assert "| `relu(x)` |" in stale.read_text()


def test_source_names_are_derived():
    assert source_name(torch.transpose) == "torch.transpose"
    assert source_name(torch.softmax) == "torch.softmax"
    assert source_name(F.gelu) == "F.gelu"
    assert source_name(F.max_pool2d) == "F.max_pool2d"
    assert source_name(runtime.rearrange) is None  # helpers are copied into generated code, not imported
    assert source_name(lambda x: x) is None


def test_buffers_come_from_the_constant_entries():
    assert set(BUFFERS) == {
        "dct_filters",
        "eye",
        "triu_indices",
        "window_index",
        "relative_position_index",
        "random_bases",
    }
    assert BUFFERS["eye"] == (runtime.eye, ("n",))


def test_lowering_refuses_an_op_without_one():
    g = graph("y = relu(x)")
    nid = next(i for i in g.order() if g.node(i)["op"] == "relu")
    node = dict(g.node(nid), op="no_such_op")
    with pytest.raises(LoweringError, match="no lowering for op `no_such_op`"):
        lower_node(None, node, [])


def test_a_lowering_needs_its_shape_rule_first_and_only_one():
    with pytest.raises(ValueError, match="unknown op"):
        lowering("not_registered_anywhere")(lambda b, n, ins: None)
    with pytest.raises(ValueError, match="two lowerings"):
        lowering("relu")(lambda b, n, ins: None)
    with pytest.raises(ValueError, match="registered twice"):
        op("relu")(lambda x: None)


@pytest.fixture
def cube_op():
    """An op added the documented way: a shape rule with `@op`, its lowering with `@lowering`."""

    @op("cube_test_op")
    def cube(x):
        """x ** 3, elementwise (a test op)."""
        need_tensor(x)
        return Out([x], x.shape)

    @lowering("cube_test_op")
    def lower_cube(b, n, ins):
        return b.call(torch.pow, (ins[0], 3))

    yield
    del OPS["cube_test_op"]


def test_adding_an_op_is_one_entry(cube_op):
    spec = inline_spec("y = cube_test_op(x) + x")
    x = torch.randn(2, 8, 5, 6)
    built = attndsl.build(spec, channels=8)
    torch.testing.assert_close(built(x), x**3 + x)
    src = attndsl.generate(spec, channels=8)
    assert "torch.pow(" in src
    gen = getattr(load_generated(src), compile_spec(spec, {"channels": 8}).class_name)(channels=8)
    gen.load_state_dict(built.state_dict())
    torch.testing.assert_close(gen(x), x**3 + x)
    assert "cube_test_op(x)" in reference_markdown()
    with pytest.raises(AttnDSLError, match="must be a tensor"):
        attndsl.build(inline_spec("y = cube_test_op(3)"), channels=8)


def test_lower_builds_every_op_of_a_graph():
    gm = lower(graph("y = softmax(transpose(x, 2, 3), dim=-1) * sigmoid(mean(x, dims=spatial, keepdim=true))"))
    targets = {n.target for n in gm.graph.nodes if n.op == "call_function"}
    assert {torch.softmax, torch.transpose, torch.sigmoid, torch.mean} <= targets
