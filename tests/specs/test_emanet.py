"""emanet against tests/reference/emanet.py: the official no-grad EM and the unrolled one, the bases'
moving average in train mode, several K and iteration counts."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference, randomize, transfer
from tests.reference.emanet import EMAttention

SHAPES = [
    {"x": [2, 16, 6, 7]},  # odd, non-square
    {"x": [1, 16, 5, 3]},  # batch 1
    {"x": [3, 16, 4, 4]},
]


def reference(params):
    p = dict(params)
    if p.get("momentum") == 1.0:
        p["momentum"] = None  # the reference's "no update" spelling
    return EMAttention(**p)


@pytest.mark.parametrize(
    "params",
    [
        {"k": 8},  # official: no gradient through EM, momentum 0.9, T = 3
        {},  # K = 64 > N: more bases than positions
        {"k": 5, "stop_em_grad": False},  # the paper's unrolled, differentiable EM
        {"k": 6, "stage_num": 1, "momentum": 1.0},  # one iteration, fixed bases
        {"k": 4, "stage_num": 5, "stop_em_grad": False, "momentum": 0.5, "bn_momentum": 0.1},
    ],
)
def test_matches_reference(params):
    params = {"channels": 16, **params}
    check_against_reference("emanet", params, reference(params), SHAPES)


@pytest.mark.parametrize(
    "params", [{"k": 8}, {"k": 5, "stop_em_grad": False, "momentum": 0.7}, {"k": 6, "momentum": 1.0}]
)
def test_bases_moving_average(params):
    """Train steps move the bases buffer exactly as the reference's (and eval steps leave it alone)."""
    params = {"channels": 16, **params}
    built = attndsl.build("emanet", **params).double()
    ref = reference(params).double()
    randomize(built)
    transfer(built, ref)
    start = built.mu.clone()
    gen = torch.Generator().manual_seed(3)
    for mode, shape in (("train", (2, 16, 5, 6)), ("train", (3, 16, 4, 7)), ("eval", (2, 16, 3, 5))):
        x = torch.randn(*shape, generator=gen, dtype=torch.float64)
        for m in (built, ref):
            m.train(mode == "train")
            m(x.clone().requires_grad_()).sum().backward()  # backward must survive the in-place update
        torch.testing.assert_close(built.mu, ref.mu, atol=1e-10, rtol=1e-8)
    assert torch.equal(built.mu, start) == (params.get("momentum") == 1.0)


def test_defaults_are_the_official_code():
    m = attndsl.build("emanet", channels=32)
    assert m.mu.shape == (1, 32, 64)  # K = 64 bases, a buffer, not a parameter
    assert "mu" in dict(m.named_buffers()) and "mu" not in dict(m.named_parameters())
    torch.testing.assert_close(m.mu.norm(dim=1), torch.ones(1, 64), atol=1e-5, rtol=0)
    assert m.conv1.bias is not None and m.conv2.bias is None
    assert m.bn.momentum == 3e-4


def test_official_em_stops_the_gradient():
    m = attndsl.build("emanet", channels=8, k=4).double()
    m(torch.randn(2, 8, 3, 5, dtype=torch.float64)).sum().backward()
    assert m.conv1.weight.grad is None and m.conv2.weight.grad is not None
