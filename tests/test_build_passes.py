"""`passes=` of build/generate/compile_spec: a comma-separated string or a list, never one pass per character."""

import pytest

import attndsl
from attndsl.errors import AttnDSLError
from attndsl.passes import DEFAULT_PIPELINE
from attndsl.pipeline import compile_spec, pass_names


@pytest.mark.parametrize(
    "given, names",
    [
        ("cse,dce", ["cse", "dce"]),
        (" cse , dce ", ["cse", "dce"]),
        ("cse,,dce,", ["cse", "dce"]),
        (["cse", "dce"], ["cse", "dce"]),
        (("dce",), ["dce"]),
        ("none", []),
        ("", []),
        ([], []),
        (None, DEFAULT_PIPELINE),
    ],
)
def test_pass_names(given, names):
    assert pass_names(given) == names


def test_build_runs_the_passes_a_string_names():
    gm = attndsl.build("senet", channels=32, passes="cse,dce")
    assert list(gm.meta["compiled"].stats) == ["cse", "dce"]
    # the fusions of the default pipeline did not run: the sigmoid and the product are separate nodes
    ops = {str(n.target) for n in gm.graph.nodes}
    assert any("sigmoid" in t for t in ops) and not any("gate" in t for t in ops)
    assert "gate(" in attndsl.generate("senet", passes="fuse_gate", channels=32)  # the fused helper's call
    assert "gate(" not in attndsl.generate("senet", passes="none", channels=32)


@pytest.mark.parametrize(
    "bad, message",
    [("cse,dcee", "unknown pass `dcee`"), (3, "comma-separated string or a list"), (["cse", 1], "list of pass names")],
)
def test_bad_passes_are_attndsl_errors(bad, message):
    with pytest.raises(AttnDSLError, match=message):
        compile_spec("senet", {"channels": 32}, bad)
