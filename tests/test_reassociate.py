"""reassociate: (A @ B) @ C <-> A @ (B @ C) chosen by the symbolic shapes; results equal with it on and off."""

import pytest
import sympy
import torch

import attndsl
import attndsl.pipeline
from attndsl.passes import DEFAULT_PIPELINE
from attndsl.passes.reassociate import cheaper
from tests.helpers import inline_spec, ops, run_pass
from tests.specs import test_a2net, test_hamnet
from tests.specs.test_hamnet import same_random_bases  # noqa: F401  (autouse: hamnet's seeded bases)

WITH = DEFAULT_PIPELINE + ["reassociate"]
N, B = sympy.symbols("N B")

LINEAR_ATTENTION = """
    fq = linear(channels, 4)
    fk = linear(channels, 4)
    fv = linear(channels, 4)
    q = fq(x)
    k = fk(x)
    y = (q @ transpose(k, 1, 2)) @ fv(x)
"""
LA_INPUTS = "x: [B, N, channels]"
LA_EXAMPLE = "{params: {channels: 8}, inputs: {x: [2, 50, 8]}}"


def _run(f, **kw):
    return run_pass("reassociate", f, **kw)


def test_cheaper_compares_the_leading_cost():
    assert cheaper(2 * B * N * N * 4, 2 * B * N * 16)  # O(N^2 d) -> O(N d^2)
    assert not cheaper(2 * B * N * 16, 2 * B * N * N * 4)
    assert not cheaper(B * N * 8, B * N * 8)  # a tie is no reason to rewrite
    assert cheaper(10, 9) and not cheaper(9, 10)


def test_linear_attention_becomes_q_times_kt_v():
    g, stats = _run(LINEAR_ATTENTION, inputs=LA_INPUTS, example=LA_EXAMPLE)
    assert stats == {"reassociated": 1, "kept": 1}  # kept: the new chain, whose other order is worse
    mm = [n for n in g.order() if g.node(n)["op"] == "matmul"]
    assert [str(g.node(n)["shape"]) for n in mm] == ["(B, 4, 4)", "(B, N, 4)"]  # no [B, N, N] left


def test_linear_attention_same_result_float64():
    spec = inline_spec(LINEAR_ATTENTION, inputs=LA_INPUTS, example=LA_EXAMPLE)
    torch.manual_seed(0)
    plain = attndsl.build(spec).double()
    opt = attndsl.build(spec, passes=WITH).double()
    opt.load_state_dict(plain.state_dict())
    assert opt.meta["compiled"].stats["reassociate"]["reassociated"] == 1
    x = torch.randn(3, 200, 8, dtype=torch.float64)
    torch.testing.assert_close(opt(x), plain(x), atol=1e-10, rtol=1e-10)


def test_no_rewrite_through_a_softmax_or_a_shared_product():
    g, stats = _run(
        """
        fq = linear(channels, 4)
        q = fq(x)
        y = softmax(q @ transpose(q, 1, 2), dim=-1) @ q
    """,
        inputs=LA_INPUTS,
        example=LA_EXAMPLE,
    )
    assert stats == {"reassociated": 0, "kept": 0}
    g, stats = _run(
        """
        fq = linear(channels, 4)
        q = fq(x)
        s = q @ transpose(q, 1, 2)
        y = s @ q + mean(s, dims=[2], keepdim=true)
    """,
        inputs=LA_INPUTS,
        example=LA_EXAMPLE,
    )
    assert stats == {"reassociated": 0, "kept": 0}  # s is read twice: it must stay


def test_already_cheap_order_is_kept():
    g, stats = _run(
        """
        fq = linear(channels, 4)
        q = fq(x)
        y = q @ (transpose(q, 1, 2) @ q)
    """,
        inputs=LA_INPUTS,
        example=LA_EXAMPLE,
    )
    assert stats == {"reassociated": 0, "kept": 1}
    assert ops(g).count("matmul") == 2


def test_choice_follows_the_widths():
    """HamNet's NMF step c @ (b^T b): with d = 1 the other order is cheaper, at the official widths it is not."""
    tiny = attndsl.compile_spec("hamnet", {"channels": 16, "ham_channels": 4, "groups": 4, "rank": 3}, WITH, check=True)
    assert tiny.stats["reassociate"]["reassociated"] > 0
    wide = attndsl.compile_spec("hamnet", {"channels": 16}, WITH, check=True)
    assert wide.stats["reassociate"]["reassociated"] == 0 and wide.stats["reassociate"]["kept"] > 0
    a2 = attndsl.compile_spec("a2net", {"channels": 16}, WITH, check=True)
    assert a2.stats["reassociate"] == {"reassociated": 0, "kept": 1}  # (A B^T) V is already O(N m n)


# --- the affected specs' oracle tests with the pass on ----------------------------------------
@pytest.fixture
def pass_on(monkeypatch):
    monkeypatch.setattr(attndsl.pipeline, "DEFAULT_PIPELINE", WITH)


@pytest.mark.parametrize(
    "params",
    [
        {"ham_channels": 4, "groups": 4, "rank": 3},  # d = 1: the pass rewrites
        {"ham_channels": 12, "rank": 5},
        {"ham_channels": 6, "rank": 2, "version": "V1", "train_steps": 2, "eval_steps": 3},
    ],
)
def test_hamnet_oracle_with_the_pass(pass_on, params):
    params = {"channels": 16, **params}
    test_hamnet.check_against_reference("hamnet", params, test_hamnet.reference(params), test_hamnet.SHAPES)


def test_hamnet_oracle_rewrites_where_it_runs(pass_on):
    m = attndsl.build("hamnet", channels=16, ham_channels=4, groups=4, rank=3)
    assert m.meta["compiled"].stats["reassociate"]["reassociated"] == 15


def test_a2net_oracle_with_the_pass(pass_on):
    for params in ({}, {"c_m": 6, "c_n": 3}, {"c_m": 1, "c_n": 5, "residual": False}):
        test_a2net.test_matches_reference(params)
