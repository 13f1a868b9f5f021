"""fuse_projections: parallel linears / conv2ds of one input -> one product over concatenated weights and a split."""

import textwrap

import pytest
import torch

import attndsl
import attndsl.pipeline
from attndsl.passes import DEFAULT_PIPELINE
from tests import module_protocol
from tests.helpers import assert_same_outputs_and_grads, inline_spec, ops, run_pass
from tests.specs import test_a2net, test_ccnet, test_danet, test_dnl, test_non_local, test_vit

WITH = ["constfold", "cse", "fuse_projections"] + DEFAULT_PIPELINE[2:]

SEQ = "x: [B, N, channels]"
SEQ_EXAMPLE = "{params: {channels: 8}, inputs: {x: [2, 11, 8]}}"
QKV = """
    fq = linear(channels, 4)
    fk = linear(channels, 4)
    fv = linear(channels, 6)
    y = softmax(fq(x) @ transpose(fk(x), 1, 2) * 0.5, dim=-1) @ fv(x)
"""
CONVS = """
    a = conv2d(channels, 4, 3, padding=1)
    b = conv2d(channels, 2, 3, padding=1)
    c = conv2d(channels, 8, 3, padding=1)
    y = concat([relu(a(x)), b(x), c(x) * 2], dim=1)
"""


def _same(f, x, **kw):
    """Outputs, gradients and state dicts equal with and without the pass, in float64; returns the fused module."""
    spec = inline_spec(textwrap.dedent(f), **kw)
    torch.manual_seed(0)
    plain = attndsl.build(spec).double()
    fused = attndsl.build(spec, passes=WITH).double()
    fused.load_state_dict(plain.state_dict())
    assert list(fused.state_dict()) == list(plain.state_dict())
    assert [type(m) for m in fused.children()] == [type(m) for m in plain.children()]
    assert_same_outputs_and_grads(plain, fused, x)
    assert "torch.cat" in attndsl.generate(spec, passes=WITH)
    return fused


def test_qkv_linears_fuse():
    g, stats = run_pass("fuse_projections", QKV, inputs=SEQ, example=SEQ_EXAMPLE)
    assert stats == {"fused": 1, "projections": 3}
    assert (
        "layer" not in ops(g) and ops(g).count("matmul") == 3 and "split" in ops(g)
    )  # one projection, two attention products
    assert sorted(g.layers) == ["fk", "fq", "fv"]  # the layers (and their parameters) stay
    m = _same(QKV, torch.randn(3, 13, 8, dtype=torch.float64), inputs=SEQ, example=SEQ_EXAMPLE)
    assert m.meta["compiled"].stats["fuse_projections"] == {"fused": 1, "projections": 3}
    assert m.meta["compiled"].stats["fuse_attention"] == {"softmax_attention": 1}  # still fuses downstream


def test_convs_with_the_same_geometry_fuse():
    g, stats = run_pass("fuse_projections", CONVS)
    assert stats == {"fused": 1, "projections": 3}
    assert "conv2d_fn" in ops(g)
    _same(CONVS, torch.randn(2, 8, 6, 5, dtype=torch.float64))


def test_checkpoint_of_the_unfused_module_loads():
    spec = inline_spec(textwrap.dedent(QKV), inputs=SEQ, example=SEQ_EXAMPLE)
    plain, fused = attndsl.build(spec), attndsl.build(spec, passes=WITH)
    fused.load_state_dict(plain.state_dict(), strict=True)
    assert isinstance(fused.fq, torch.nn.Linear) and fused.fq.weight is fused.get_parameter("fq.weight")


@pytest.mark.parametrize(
    "f, why",
    [
        (
            """
        fq = linear(channels, 4)
        fk = linear(channels, 4)
        y = fq(x) + fk(relu(x))
     """,
            "different inputs",
        ),
        (
            """
        fq = linear(channels, 4)
        y = fq(x) + fq(x) * 2
     """,
            "one layer applied twice: cse merges those",
        ),
        (
            """
        fq = linear(channels, 4)
        fk = linear(channels, 4, bias=false)
        y = fq(x) + fk(x)
     """,
            "bias and no bias",
        ),
    ],
)
def test_linears_that_do_not_fuse(f, why):
    g, stats = run_pass("fuse_projections", f, inputs=SEQ, example=SEQ_EXAMPLE)
    assert stats == {"fused": 0, "projections": 0}, why
    assert "split" not in ops(g)


@pytest.mark.parametrize(
    "f, why",
    [
        (
            """
        a = conv2d(channels, 4, 3, padding=1)
        b = conv2d(channels, 4, 3, padding=2, dilation=2)
        y = a(x) + b(x)
     """,
            "SK's branches: other dilation",
        ),
        (
            """
        a = conv2d(channels, 4, 3, padding=1)
        b = conv2d(channels, 4, 5, padding=2)
        y = a(x) + b(x)
     """,
            "other kernel",
        ),
        (
            """
        a = conv2d(channels, 4, 3, padding=1, groups=2)
        b = conv2d(channels, 4, 3, padding=1, groups=2)
        y = a(x) + b(x)
     """,
            "grouped",
        ),
        (
            """
        a = conv2d(channels, 4, 1)
        b = linear(channels, 4)
        y = a(x) + transpose(b(transpose(x, 1, 3)), 1, 3)
     """,
            "different kinds",
        ),
    ],
)
def test_convs_that_do_not_fuse(f, why):
    g, stats = run_pass("fuse_projections", f)
    assert stats == {"fused": 0, "projections": 0}, why


def test_linears_over_a_run_of_axes_are_left_alone():
    g, stats = run_pass(
        "fuse_projections",
        """
        fq = linear(channels, 4)
        fk = linear(channels, 4)
        y = fq(x) + fk(x)
    """,
        inputs='x: [B, "*S", channels]',
        example="{params: {channels: 8}, inputs: {x: [2, 3, 4, 8]}}",
    )
    assert stats == {"fused": 0, "projections": 0}


def test_not_in_the_default_pipeline_but_listed():
    assert "fuse_projections" not in DEFAULT_PIPELINE
    from attndsl.passes import PASSES

    assert "fuse_projections" in PASSES and PASSES["fuse_projections"].doc


# --- the specs it rewrites: their oracle tests with the pass on and off ------------------------
@pytest.fixture(params=["on", "off"])
def pipeline(request, monkeypatch):
    monkeypatch.setattr(attndsl.pipeline, "DEFAULT_PIPELINE", WITH if request.param == "on" else DEFAULT_PIPELINE)
    return request.param


def _cases(module):
    """The spec test's own parameter sets (its `test_matches_reference` parametrisation)."""
    mark = next(m for m in module.test_matches_reference.pytestmark if m.name == "parametrize")
    return [(module, p) for p in mark.args[1]]


ORACLES = [c for m in (test_vit, test_non_local, test_danet, test_dnl, test_a2net, test_ccnet) for c in _cases(m)]


@pytest.mark.parametrize(
    "module, params", ORACLES, ids=[f"{m.__name__.split('_', 1)[1]}-{i}" for i, (m, _) in enumerate(ORACLES)]
)
def test_oracle(pipeline, module, params):
    module.test_matches_reference(params)


@pytest.mark.parametrize(
    "name, fused, projections",
    [
        ("vit", 1, 3),
        ("non_local", 1, 2),
        ("danet", 1, 3),
        ("dnl", 1, 3),
        ("a2net", 1, 3),
        ("ccnet", 2, 6),
    ],
)
def test_what_it_rewrites_in_the_specs(name, fused, projections):
    """At each spec's example: q/k/v (vit, danet, dnl, ccnet's two steps), non-local's phi/g of the
    pooled x (theta reads x itself), A2-Net's phi/theta/rho."""
    c = attndsl.compile_spec(name, attndsl.pipeline.load(name).example.get("params", {}), WITH, check=True)
    assert c.stats["fuse_projections"] == {"fused": fused, "projections": projections}


@pytest.mark.parametrize("kind", module_protocol.KINDS)
@pytest.mark.parametrize("name", ["non_local", "vit"])
def test_module_protocol_with_the_pass(monkeypatch, name, kind):
    monkeypatch.setattr(attndsl.pipeline, "DEFAULT_PIPELINE", WITH)
    case = module_protocol.Case(name, kind)
    if kind == "built":
        assert case.block.meta["compiled"].stats["fuse_projections"]["fused"] == 1
    for check in module_protocol.CHECKS.values():
        check(case)
