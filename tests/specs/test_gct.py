"""gct against tests/reference/gct.py, at 1-D, 2-D and 3-D inputs, l2 and l1 embeddings."""

import pytest
import torch

from tests.oracle import check_against_reference
from tests.reference.gct import GCT

C = 24
SHAPES = [
    {"x": [2, C, 7, 9]},  # 2-D, non-square, odd
    {"x": [1, C, 5]},  # 1-D, batch 1
    {"x": [3, C, 3, 4, 5]},  # 3-D
]


def relu_inputs(name, shape, gen):
    return torch.randn(*shape, generator=gen, dtype=torch.float64).relu()


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"eps": 1e-3},
        {"mode": "l1"},
        {"mode": "l1", "eps": 0.1},
        {"mode": "l1", "after_relu": True},
    ],
)
def test_matches_reference(params):
    check_against_reference("gct", {"channels": C, **params}, GCT(C, **params), SHAPES)


def test_after_relu_on_relu_inputs():
    p = {"mode": "l1", "after_relu": True}
    check_against_reference("gct", {"channels": C, **p}, GCT(C, **p), SHAPES, input_fn=relu_inputs)


def test_identity_at_initialisation():
    import attndsl

    for mode in ("l2", "l1"):
        m = attndsl.build("gct", channels=8, mode=mode)
        x = torch.randn(2, 8, 5, 6)
        torch.testing.assert_close(m(x), x)
