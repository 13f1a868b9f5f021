"""fuse_attention's forms beyond softmax(q k^T c) v: transposed, shifted scores; what must stay unfused."""

import textwrap

import pytest
import torch

import attndsl
import attndsl.pipeline
from attndsl.passes import DEFAULT_PIPELINE
from tests.helpers import assert_same_outputs_and_grads, inline_spec, ops, run_pass
from tests.specs import test_danet, test_gltr, test_maxvit

SEQ = "x: [B, N, channels]"
SEQ_EXAMPLE = "{params: {channels: 8}, inputs: {x: [2, 11, 8]}}"
PROJ = """
    fq = linear(channels, 4)
    fk = linear(channels, 4)
    fv = linear(channels, 6)
"""


def _program(f):
    return textwrap.dedent(PROJ) + textwrap.dedent(f).strip("\n")


def _run(f, **kw):
    return run_pass("fuse_attention", _program(f), inputs=SEQ, example=SEQ_EXAMPLE, **kw)


def _same(f, shape=(3, 13, 8)):
    """Outputs and gradients (input and parameters) equal with and without the pass, in float64."""
    spec = inline_spec(_program(f), inputs=SEQ, example=SEQ_EXAMPLE)
    torch.manual_seed(0)
    plain = attndsl.build(spec, passes=[]).double()
    fused = attndsl.build(spec).double()
    fused.load_state_dict(plain.state_dict())
    assert fused.meta["compiled"].stats["fuse_attention"] == {"softmax_attention": 1}
    x = torch.randn(*shape, dtype=torch.float64)
    assert_same_outputs_and_grads(plain, fused, x)
    assert "scaled_dot_product_attention" in attndsl.generate(spec)


TRANSPOSED = "y = transpose(fv(x), 1, 2) @ softmax(fk(x) @ transpose(fq(x), 1, 2) * 0.5, dim=1)"
SHIFT_MAX = """
    s = fq(x) @ transpose(fk(x), 1, 2)
    y = softmax(s - amax(s, dims=[2], keepdim=true), dim=-1) @ fv(x)
"""
SHIFT_NEG = """
    s = fq(x) @ transpose(fk(x), 1, 2) / 2
    y = softmax(amax(s, dims=[2], keepdim=true) - s, dim=-1) @ fv(x)
"""


@pytest.mark.parametrize("f", [TRANSPOSED, SHIFT_MAX, SHIFT_NEG], ids=["transposed", "shift", "negated"])
def test_fuses_and_computes_the_same(f):
    g, stats = _run(f)
    assert stats == {"softmax_attention": 1}
    assert "softmax" not in ops(g) and ops(g).count("attention") == 1
    _same(f)


def test_transposed_form_cancels_the_transposes():
    g, _ = _run(TRANSPOSED)
    # q = fq(x) and k = fk(x) straight from the linears; v^T of transpose(fv(x)) is fv(x)
    att = next(n for n in g.order() if g.node(n)["op"] == "attention")
    assert [g.node(i)["op"] for i in g.node(att)["inputs"]] == ["layer", "layer", "layer"]
    assert ops(g).count("transpose") == 1  # the result's, back to [B, 6, N]


def test_negated_scores_keep_a_positive_scale():
    g, _ = _run(SHIFT_NEG)
    att = next(n for n in g.order() if g.node(n)["op"] == "attention")
    assert g.node(att)["attrs"]["scale"] == 0.5
    assert g.node(g.node(att)["inputs"][0])["op"] == "neg"


@pytest.mark.parametrize(
    "f, why",
    [
        ("y = softmax(fq(x) @ transpose(fk(x), 1, 2), dim=1) @ fv(x)", "softmax over the other axis"),
        ("y = transpose(fv(x), 1, 2) @ softmax(fk(x) @ transpose(fq(x), 1, 2), dim=2)", "transposed, wrong axis"),
        (
            """
        a = softmax(fq(x) @ transpose(fk(x), 1, 2), dim=-1)
        y = a @ fv(x) + mean(a, dims=[2], keepdim=true)
     """,
            "the map is read again",
        ),
        (
            """
        s = fq(x) @ transpose(fk(x), 1, 2)
        y = softmax(s, dim=-1) @ fv(x) + amax(s, dims=[2], keepdim=true)
     """,
            "the scores are read again",
        ),
        (
            """
        s = fq(x) @ transpose(fk(x), 1, 2)
        y = softmax(s - amax(s, dims=[1], keepdim=true), dim=-1) @ fv(x)
     """,
            "the shift varies along the softmax axis",
        ),
        (
            """
        s = fq(x) @ transpose(fk(x), 1, 2)
        y = softmax(s - s, dim=-1) @ fv(x)
     """,
            "not a shift",
        ),
        (
            "y = softmax(fq(x) @ transpose(fk(x), 1, 2) * narrow(fq(x), 2, 0, 1), dim=-1) @ fv(x)",
            "scale is not a constant",
        ),
    ],
)
def test_does_not_fuse(f, why):
    g, stats = _run(f)
    assert stats == {}, why
    assert "attention" not in ops(g)


# --- additive terms: relative-position biases and -inf masks become SDPA's attn_mask ---------------
BIAS_PER_KEY = "y = softmax(fq(x) @ transpose(fk(x), 1, 2) * 0.5 + unsqueeze(sum(fv(x), dims=2), 1), dim=-1) @ fv(x)"
BIAS_FIRST = "y = softmax(tanh(fk(x) @ transpose(fk(x), 1, 2)) + fq(x) @ transpose(fk(x), 1, 2), dim=-1) @ fv(x)"
CAUSAL = """
    i = arange_like(x, dim=1)
    later = (unsqueeze(i, 1) < unsqueeze(i, 0)) * -1e9          # [N, N]: a rank-2 mask under 3-D q, k, v
    y = softmax(fq(x) @ transpose(fk(x), 1, 2) / 2 + later, dim=-1) @ fv(x)
"""
BIAS_TRANSPOSED = """
    y = transpose(fv(x), 1, 2) @ softmax(fk(x) @ transpose(fq(x), 1, 2) * 0.5 + tanh(fk(x) @ transpose(fk(x), 1, 2)),
                                         dim=1)
"""


@pytest.mark.parametrize(
    "f", [BIAS_PER_KEY, BIAS_FIRST, CAUSAL, BIAS_TRANSPOSED], ids=["per-key", "bias-first", "causal", "transposed"]
)
def test_bias_becomes_the_mask(f):
    g, stats = _run(f)
    assert stats == {"softmax_attention": 1}
    att = next(n for n in g.order() if g.node(n)["op"] == "attention")
    assert len(g.node(att)["inputs"]) == 4 and "softmax" not in ops(g)
    _same(f)  # outputs and gradients, the bias's parameters included


def test_causal_mask_masks():
    spec = inline_spec(_program(CAUSAL), inputs=SEQ, example=SEQ_EXAMPLE)
    m = attndsl.build(spec).double()
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    y = m(x)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 3, 8, dtype=torch.float64)  # later tokens do not reach earlier outputs
    torch.testing.assert_close(m(x2)[:, :4], y[:, :4])
    assert "attn_mask" in attndsl.generate(spec)


@pytest.mark.parametrize(
    "f, why",
    [
        (
            "y = softmax(fq(x) @ transpose(fk(x), 1, 2) * -0.5 + tanh(fk(x) @ transpose(fk(x), 1, 2)), dim=-1) @ fv(x)",
            "a negative scale with a bias",
        ),
        (
            """
        s = fq(x) @ transpose(fk(x), 1, 2)
        y = softmax(s + tanh(s), dim=-1) @ fv(x)
     """,
            "the product is read again (by its bias)",
        ),
        (
            """
        s = fq(x) @ transpose(fk(x), 1, 2)
        y = softmax(s + unsqueeze(sum(fv(x), dims=2), 1), dim=-1) @ fv(x) + s @ fv(x)
     """,
            "the product is read again",
        ),
        ("y = softmax(fq(x) @ transpose(fk(x), 1, 2) + 0.5, dim=-1) @ fv(x)", "a constant is no mask"),
    ],
)
def test_bias_does_not_fuse(f, why):
    g, stats = _run(f)
    assert stats == {}, why


# --- the specs whose softmaxes the new forms reach: oracle tests with the pass on and off ------
@pytest.fixture(params=["on", "off"])
def pipeline(request, monkeypatch):
    names = DEFAULT_PIPELINE if request.param == "on" else [p for p in DEFAULT_PIPELINE if p != "fuse_attention"]
    monkeypatch.setattr(attndsl.pipeline, "DEFAULT_PIPELINE", names)
    return request.param


def test_danet_both_softmaxes_fuse():
    c = attndsl.compile_spec("danet", {"channels": 64})
    assert c.stats["fuse_attention"] == {"softmax_attention": 2}  # position and channel attention
    assert "softmax" not in ops(c.graph)


def test_gltr_transposed_softmax_fuses():
    c = attndsl.compile_spec("gltr", {"channels": 64})
    assert c.stats["fuse_attention"] == {"softmax_attention": 1}


@pytest.mark.parametrize("params", [{}, {"cam_energy": "plain"}, {"branches": "position", "reduction": 4}])
def test_danet_oracle(pipeline, params):
    test_danet.test_matches_reference(params)


@pytest.mark.parametrize("params", [{}, {"branches": 2, "kernel_size": 5, "reduction": 4}])
def test_gltr_oracle(pipeline, params):
    test_gltr.test_matches_reference(params)


# --- above 4-D: windows [B, W, heads, N, d]; the lowering merges the leading axes for a 4-D SDPA --------
WIN = "x: [B, W, N, channels]"
WIN_EXAMPLE = "{params: {channels: 8}, inputs: {x: [2, 3, 5, 8]}}"
HEADS = """
    def heads(t) = rearrange(t, "b w n (h d) -> b w h n d", h=2)
    s = heads(fq(x)) @ transpose(heads(fk(x)), -2, -1) * 0.5
"""
WINDOWED = {
    "plain": "y = softmax(s, dim=-1) @ heads(fv(x))",
    "full-rank bias": "y = softmax(s + tanh(heads(fk(x)) @ transpose(heads(fk(x)), -2, -1)), dim=-1) @ heads(fv(x))",
    "rank-3 bias": "y = softmax(s + mean(tanh(heads(fk(x)) @ transpose(heads(fk(x)), -2, -1)), dims=[0, 1]), dim=-1)"
    " @ heads(fv(x))",
    "unit-lead bias": "y = softmax(s + mean(tanh(heads(fk(x)) @ transpose(heads(fk(x)), -2, -1)), dims=[0, 1], "
    "keepdim=true), dim=-1) @ heads(fv(x))",
    "bias broadcast over the batch": "y = softmax(s + mean(tanh(heads(fk(x)) @ transpose(heads(fk(x)), -2, -1)), "
    "dims=[0], keepdim=true), dim=-1) @ heads(fv(x))",
}
NOT_MERGEABLE = {
    "a broadcast k": "y = softmax(heads(fq(x)) @ transpose(mean(heads(fk(x)), dims=[1], keepdim=true), -2, -1), "
    "dim=-1) @ heads(fv(x))",
    "a lower-rank mask not 1 on its leading axis": "y = softmax(s + mean(tanh(heads(fk(x)) @ "
    "transpose(heads(fk(x)), -2, -1)), dims=[0]), dim=-1) @ heads(fv(x))",
}


def _windowed(f):
    return _program(HEADS + textwrap.dedent(f))


class _SDPARanks(torch.overrides.TorchFunctionMode):
    """Records the ranks of every scaled_dot_product_attention call's q, k, v and mask."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.nn.functional.scaled_dot_product_attention:
            mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
            self.calls.append(tuple(t.dim() for t in args[:3]) + ((mask.dim(),) if mask is not None else ()))
        return func(*args, **kwargs)


@pytest.mark.parametrize("f", list(WINDOWED.values()), ids=list(WINDOWED))
def test_windows_above_rank_4_fuse_into_4d_attention(f):
    _fuses_into_4d_sdpa(_windowed(f), "softmax_attention")


def _fuses_into_4d_sdpa(program, rule):
    """The window program fuses by `rule`, computes what the unfused graph does (outputs and gradients) at two
    shapes, and hands SDPA 4-D operands and mask, in the built module and in generated code."""
    spec = inline_spec(program, inputs=WIN, example=WIN_EXAMPLE)
    torch.manual_seed(0)
    plain = attndsl.build(spec, passes=[]).double()
    fused = attndsl.build(spec).double()
    fused.load_state_dict(plain.state_dict())
    assert fused.meta["compiled"].stats["fuse_attention"] == {rule: 1}
    assert "softmax" not in ops(fused.meta["compiled"].graph)
    for shape in [(3, 4, 7, 8), (1, 2, 1, 8)]:
        x = torch.randn(*shape, dtype=torch.float64)
        assert_same_outputs_and_grads(plain, fused, x)
        with _SDPARanks() as seen:
            fused(x)
        assert seen.calls and all(set(c) == {4} for c in seen.calls), seen.calls
    assert "scaled_dot_product_attention" in attndsl.generate(spec)


@pytest.mark.parametrize("f", list(NOT_MERGEABLE.values()), ids=list(NOT_MERGEABLE))
def test_windows_whose_leading_axes_cannot_merge_stay_unfused(f):
    g, stats = run_pass("fuse_attention", _windowed(f), inputs=WIN, example=WIN_EXAMPLE)
    assert stats == {} and "softmax" in ops(g)


@pytest.mark.parametrize(
    "spec, params",
    [
        ("maxvit", {"partition": "block"}),
        ("maxvit", {"partition": "grid"}),
        ("maxvit", {"rel_pos_bias": False}),
        ("pvt_v2", {"sr_ratio": 2}),
    ],
)
def test_specs_hand_sdpa_4d_operands_and_mask(spec, params):
    """Windows merge to 4-D, and a rank-3 bias gains a unit axis: with a lower-rank mask the CPU's SDPA leaves
    its fused kernel for the unfused math path."""
    m = attndsl.build(spec, channels=16, **({"dim_head": 8} if spec == "maxvit" else {}), **params).eval()
    assert m.meta["compiled"].stats["fuse_attention"] == {"softmax_attention": 1}
    x = torch.randn(2, 14, 14, 16) if spec == "maxvit" else torch.randn(2, 8, 8, 16)
    with torch.no_grad(), _SDPARanks() as seen:
        m(x)
    assert seen.calls and all(set(c) == {4} for c in seen.calls), seen.calls


@pytest.mark.parametrize("partition", ["block", "grid"])
def test_maxvit_oracle(pipeline, partition):
    test_maxvit.test_matches_reference(test_maxvit.PARAMS[0], partition)


# --- attention written with einsum, any axis order; local windows (one query each, L = 1) --------------------
WINDOW_KEYS = """
    def heads(t) = rearrange(t, "b w n (h d) -> b h w n d", h=2)
    q = heads(fq(x))
"""
EINSUM = {
    # each window w's N tokens attend to each other; the heads axis moved, the output in another order
    "windows": "y = einsum('bhwnm,bhwmd->bwnhd', softmax(einsum('bhwnd,bhwmd->bhwnm', q, heads(fk(x))) * 0.5, "
    "dim=-1), heads(fv(x)))",
    "masked per key": "y = einsum('bhwnm,bhwmd->bwnhd', softmax(einsum('bhwnd,bhwmd->bhwnm', q, heads(fk(x))) "
    "+ log(sigmoid(mean(heads(fv(x)), dims=[0, 1, 2, 4]))), dim=-1), heads(fv(x)))",
    "max-shifted": """
        s = einsum('bhwnd,bhwmd->bhwnm', q, heads(fk(x)))
        y = einsum('bhwnm,bhwmd->bwnhd', softmax(s - amax(s, dims=[4], keepdim=true), dim=-1), heads(fv(x)))
    """,
}
EINSUM_NOT = {
    # one query per window w (its first token) against the window's tokens: no query axis, L = 1. SDPA
    # measured no faster in eval and slower in training there (SASA, benchmarks/RESULTS.md)
    "one query": "y = einsum('bhwn,bhwnd->bwhd', softmax(einsum('bhwd,bhwnd->bhwn', select(q, 3, 0), heads(fk(x))), "
    "dim=-1), heads(fv(x)))",
    "two contracted axes": "y = einsum('bhwn,bhwnd->bwhd', softmax(einsum('bhwnd,bhwmd->bhwm', q, heads(fk(x))), "
    "dim=-1), heads(fv(x)))",
    "values per query": "y = einsum('bhwnm,bhwnd->bhwnd', softmax(einsum('bhwnd,bhwmd->bhwnm', q, heads(fk(x))), "
    "dim=-1), heads(fv(x)))",
    "softmax over the queries": "y = einsum('bhwnm,bhwmd->bwnhd', softmax(einsum('bhwnd,bhwmd->bhwnm', q, "
    "heads(fk(x))), dim=-2), heads(fv(x)))",
    "a batch axis broadcast": "y = einsum('bhwn,bhwnd->bwhd', softmax(einsum('bhwd,bhwnd->bhwn', "
    "mean(select(q, 3, 0), dims=[0], keepdim=true), heads(fk(x))), dim=-1), heads(fv(x)))",
}


def _einsum_program(f):
    return _program(WINDOW_KEYS + textwrap.dedent(f))


@pytest.mark.parametrize("f", list(EINSUM.values()), ids=list(EINSUM))
def test_einsum_attention_fuses_into_4d_attention(f):
    _fuses_into_4d_sdpa(_einsum_program(f), "einsum_attention")


@pytest.mark.parametrize("f", list(EINSUM_NOT.values()), ids=list(EINSUM_NOT))
def test_einsum_forms_that_are_no_attention_stay(f):
    g, stats = run_pass("fuse_attention", _einsum_program(f), inputs=WIN, example=WIN_EXAMPLE)
    assert stats == {} and "softmax" in ops(g)


def test_sasa_windows_stay_unfused():
    """SASA's windows (one query against its k x k neighbours, L = 1) stay einsums: fused, SDPA measured no
    faster in eval and 1.6x slower compiled in training."""
    c = attndsl.compile_spec("sasa", {"channels": 16, "heads": 2})
    assert c.stats["fuse_attention"] == {} and "softmax" in ops(c.graph)
