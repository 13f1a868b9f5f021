"""ccnet against tests/reference/ccnet.py: recurrence 1-3, reductions, the paper's fixed gamma."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.ccnet import CrissCrossAttention

SHAPES = [
    {"x": [2, 16, 7, 9]},  # odd and non-square
    {"x": [1, 16, 5, 3]},  # batch 1, H > W
    {"x": [2, 16, 1, 6]},  # a single row: the path is the row alone
]


def reference(params):
    ref = CrissCrossAttention(16, **params)
    if not params.get("learn_gamma", True):
        ref._non_persistent_buffers_set.add("gamma")  # the constant gamma = 1 is no state to transfer
    return ref


@pytest.mark.parametrize(
    "params",
    [
        {},  # R = 2, C // 8, learned gamma
        {"recurrence": 1},
        {"recurrence": 3, "reduction": 2},
        {"learn_gamma": False},  # the paper's H' = sum A V + H
        {"learn_gamma": False, "reduction": 32},  # width floor 1
    ],
)
def test_matches_reference(params):
    check_against_reference("ccnet", {"channels": 16, **params}, reference(params), SHAPES)


def test_large_logits_are_stable():
    # logits far apart: the self-removal in the normaliser must not lose the other weights
    built, ref = check_against_reference(
        "ccnet",
        {"channels": 16, "learn_gamma": False},
        reference({"learn_gamma": False}),
        [{"x": [1, 16, 4, 5]}],
        modes=("eval",),
        seed=3,
    )
    with torch.no_grad():
        for m in (built.query, built.key):
            m.weight.mul_(20)
        ref.query.weight.copy_(built.query.weight), ref.key.weight.copy_(built.key.weight)
    x = torch.randn(1, 16, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(built(x), ref(x), atol=1e-9, rtol=1e-7)


def test_defaults_and_identity_start():
    m = attndsl.build("ccnet", channels=64)
    assert m.query.weight.shape == (8, 64, 1, 1) and m.value.weight.shape == (64, 64, 1, 1)
    assert torch.equal(m.gamma, torch.zeros(1))
    x = torch.randn(2, 64, 5, 6)
    torch.testing.assert_close(m(x), x)
    assert "gamma" not in dict(attndsl.build("ccnet", channels=64, learn_gamma=False).named_parameters())
