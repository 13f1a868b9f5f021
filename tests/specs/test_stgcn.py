"""stgcn against tests/reference/stgcn.py: clip lengths, stripes that do not divide H, every variant."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.stgcn import STGCN


def key_map(num_layers):
    """Spec `temporal_phi` / `temporal_W.i` -> reference `temporal.phi` / `temporal.W.i` (likewise structural)."""
    out = {}
    for br in ("temporal", "structural"):
        out[f"{br}_phi.weight"] = f"{br}.phi.weight"
        for i in range(num_layers):
            out[f"{br}_W.{i}.weight"] = f"{br}.W.{i}.weight"
    return out


SHAPES = [
    {"x": [2, 3, 8, 8, 4]},  # P = 4 divides H
    {"x": [1, 5, 8, 7, 5]},  # batch 1, odd: stripes of 2, 2, 2, 1 rows
    {"x": [3, 1, 8, 6, 9]},  # one frame, non-square
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # P = 4, two layers, self loops, pooled
        {"self_loops": False},
        {"num_layers": 3, "parts": 3},
        {"num_layers": 1, "pool": False},  # node features [B, T, P, 2C]
    ],
)
def test_matches_reference(params):
    check_against_reference(
        "stgcn", {"channels": 8, **params}, STGCN(8, **params), SHAPES, key_map=key_map(params.get("num_layers", 2))
    )


def test_frame_order_does_not_matter():
    m = attndsl.build("stgcn", channels=8).double()
    x = torch.randn(2, 4, 8, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(m(x), m(x[:, [2, 0, 3, 1]]))
    assert m(x).shape == (2, 16)
