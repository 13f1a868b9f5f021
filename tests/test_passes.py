"""Each pass: a case where it fires, a case where it must not, and the module still computes the same."""

import pytest
import torch

from attndsl.errors import AttnDSLError
from attndsl.lowering import lower
from attndsl.passes import DEFAULT_PIPELINE, PASSES, get_pass
from attndsl.verify import verify
from tests.helpers import graph, ops


def run(g, name):
    stats = get_pass(name).apply(g)
    verify(g)
    return stats


def same_function(f, passes, inputs=None, **kw):
    """The program lowered without and with `passes` gives the same outputs."""
    torch.manual_seed(0)
    plain = lower(graph(f, **kw))
    g = graph(f, **kw)
    for p in passes:
        run(g, p)
    opt = lower(g)
    opt.load_state_dict(plain.state_dict())
    xs = inputs or [torch.randn(2, 8, 5, 6)]
    a, b = plain(*xs), opt(*xs)
    torch.testing.assert_close(a, b)
    return g


def test_registry_lists_every_pass_with_a_doc():
    assert set(DEFAULT_PIPELINE) <= set(PASSES)
    assert all(p.doc for p in PASSES.values())
    with pytest.raises(AttnDSLError, match="did you mean `cse`"):
        get_pass("cs")


# --- dce -------------------------------------------------------------------------------
def test_dce_removes_unused_nodes_and_layers():
    g = graph("""
        unused = linear(channels, 4)
        dead = relu(unused(mean(x, dims=spatial)))
        y = sigmoid(x)
    """)
    assert "unused" in g.layers
    stats = run(g, "dce")
    assert stats == {"nodes_removed": 3, "layers_removed": 1}
    assert ops(g) == ["input", "sigmoid"] and not g.layers


def test_dce_keeps_everything_outputs_need():
    g = graph("y = sigmoid(x) * x")
    assert run(g, "dce")["nodes_removed"] == 0


def test_dce_keeps_unused_inputs():
    g = graph("y = x * 2", inputs="x: [B, channels, H, W]\nh: [B, 4]")
    run(g, "dce")
    assert [n for n, _ in g.inputs] == ["x", "h"] and ops(g).count("input") == 2


# --- cse --------------------------------------------------------------------------------
def test_cse_merges_repeated_pure_work():
    f = """
        fc = linear(channels, channels)
        a = fc(mean(x, dims=spatial))
        b = fc(mean(x, dims=spatial))
        y = x * unsqueeze(sigmoid(a + b), like=x)
    """
    g = same_function(f, ["cse", "dce"])
    assert ops(g).count("mean") == 1 and ops(g).count("layer") == 1


def test_cse_keeps_different_attributes_apart():
    g = graph("y = mean(x, dims=[2], keepdim=true) + mean(x, dims=[3], keepdim=true)")
    assert run(g, "cse")["merged"] == 0


def test_cse_does_not_merge_stateful_batchnorm():
    f = """
        bn = batchnorm(channels)
        y = bn(x) + bn(x)
    """
    g = graph(f)
    assert run(g, "cse")["merged"] == 0
    assert ops(g).count("layer") == 2


# --- constfold ----------------------------------------------------------------------------
def test_constfold_folds_parameter_arithmetic_and_identities():
    f = """
        scale = channels ** -0.5
        y = (x * scale) * (channels // 8)
    """
    g = graph(f)
    assert ops(g).count("pow") == 1 and ops(g).count("floordiv") == 1
    stats = run(g, "constfold")
    run(g, "dce")
    assert stats["folded"] >= 3  # pow, floordiv, then x * 1
    assert ops(g) == ["input", "const", "mul"]
    c = next(g.node(n) for n in g.order() if g.node(n)["op"] == "const")
    assert c["attrs"]["value"] == pytest.approx(8**-0.5)
    same_function(f, ["constfold", "dce"])


def test_constfold_keeps_non_identities_and_broadcasts():
    g = graph("y = x * 2 + 0 * x")
    before = ops(g)
    run(g, "constfold")
    assert ops(g) == before  # 0 * x is not x, x * 2 is not x


def test_constfold_keeps_identity_that_broadcasts():
    # s + 0 broadcast to x's shape changes the shape: it must stay
    g = graph(
        "y = mean(x, dims=[1], keepdim=true) + zeros",
        params={},
        inputs="x: [B, channels, H, W]\nzeros: [B, channels, H, W]",
    )
    assert run(g, "constfold")["folded"] == 0


# --- fuse_attention --------------------------------------------------------------------------
ATTN = """
    q = rearrange(x, "b c h w -> b (h w) c")
    a = softmax(q @ transpose(q, 1, 2) * 0.5, dim=-1)
    y = a @ q
"""


def test_fuse_attention_fires_on_softmax_attention():
    g = same_function(ATTN, ["fuse_attention", "dce"])
    assert ops(g).count("attention") == 1 and "softmax" not in ops(g)
    node = next(g.node(n) for n in g.order() if g.node(n)["op"] == "attention")
    assert node["attrs"]["scale"] == 0.5


def test_fuse_attention_handles_division_and_untransposed_keys():
    f = """
        q = rearrange(x, "b c h w -> b (h w) c")
        kt = rearrange(x, "b c h w -> b c (h w)")
        y = softmax(q @ kt / 4, dim=-1) @ q
    """
    g = same_function(f, ["fuse_attention", "dce"])
    assert ops(g).count("attention") == 1


def test_fuse_attention_leaves_a_reused_map_alone():
    f = ATTN + "    z = a\n"
    g = graph(f, outputs="[y, z]")
    assert run(g, "fuse_attention") == {}
    assert "softmax" in ops(g) and "attention" not in ops(g)


def test_fuse_attention_needs_the_last_axis():
    f = """
        q = rearrange(x, "b c h w -> b (h w) c")
        y = softmax(q @ transpose(q, 1, 2), dim=1) @ q
    """
    assert run(graph(f), "fuse_attention") == {}


# --- fuse_gate --------------------------------------------------------------------------------
def test_fuse_gate_folds_sigmoid_gate_behind_unsqueeze():
    f = """
        s = mean(x, dims=spatial)
        y = x * unsqueeze(sigmoid(s), like=x)
    """
    g = same_function(f, ["fuse_gate", "dce"])
    assert "gate" in ops(g) and "sigmoid" not in ops(g)


def test_fuse_gate_folds_one_plus_tanh():
    f = "y = x * (1 + tanh(mean(x, dims=[1], keepdim=true)))"
    g = same_function(f, ["fuse_gate", "dce"])
    gate = next(g.node(n) for n in g.order() if g.node(n)["op"] == "gate")
    assert gate["attrs"] == {"act": "tanh", "plus_one": True}


def test_fuse_gate_leaves_a_shared_activation_alone():
    f = """
        a = sigmoid(x)
        y = x * a + a
    """
    assert run(graph(f), "fuse_gate") == {}


def test_default_pipeline_keeps_the_function():
    same_function(ATTN, DEFAULT_PIPELINE)
