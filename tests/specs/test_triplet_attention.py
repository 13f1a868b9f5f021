"""triplet_attention against tests/reference/triplet_attention.py: k = 7 and others, with and without the H-W branch."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.triplet_attention import TripletAttention

SHAPES = [
    {"x": [2, 6, 7, 9]},  # C, H, W all different: a swapped axis cannot go unnoticed
    {"x": [1, 5, 12, 4]},  # batch 1 (each BN sees a whole pooled map)
    {"x": [3, 8, 3, 5]},  # smaller than the 7x7 kernel
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official: k = 7, three branches
        {"no_spatial": True},  # official switch: C-W and H-C branches only
        {"kernel_size": 3},
        {"kernel_size": 5, "no_spatial": True},
    ],
)
def test_matches_reference(params):
    for shape in SHAPES:
        c = shape["x"][1]
        check_against_reference("triplet_attention", {"channels": c, **params}, TripletAttention(c, **params), [shape])


def test_defaults_are_the_official_code():
    m = attndsl.build("triplet_attention", channels=64)
    for branch in ("cw", "hc", "hw"):
        conv, bn = m.get_submodule(f"{branch}.conv"), m.get_submodule(f"{branch}.bn")
        assert conv.weight.shape == (1, 2, 7, 7) and conv.bias is None and bn.momentum == 0.01
    assert "hw" not in dict(attndsl.build("triplet_attention", channels=64, no_spatial=True).named_modules())
