"""sasa against tests/reference/sasa.py: window sizes, head counts, out_channels, both border modes."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.sasa import SASA

SHAPES = [
    {"x": [2, 12, 6, 7]},  # odd, non-square
    {"x": [1, 12, 5, 3]},  # batch 1, narrower than the window
    {"x": [3, 12, 4, 4]},
]


@pytest.mark.parametrize(
    "params",
    [
        {"channels": 16},  # paper: k = 7, 8 heads, zero padding
        {"channels": 12, "heads": 4, "kernel_size": 3},
        {"channels": 12, "heads": 2, "kernel_size": 5, "padding_mode": "mask"},  # outside positions excluded
        {"channels": 12, "out_channels": 10, "heads": 5, "kernel_size": 3},  # odd split of the embedding dims
        {"channels": 12, "out_channels": 8, "heads": 1, "kernel_size": 1, "padding_mode": "mask"},
        {"channels": 12, "out_channels": 16, "padding_mode": "mask"},  # windows wider than the image
    ],
)
def test_matches_reference(params):
    shapes = [{"x": [s[0], params["channels"], *s[2:]]} for s in (d["x"] for d in SHAPES)]
    check_against_reference("sasa", params, SASA(**params), shapes)


def test_defaults_are_the_papers():
    m = attndsl.build("sasa", channels=64)
    assert m.query.weight.shape == (64, 64, 1, 1) and m.query.bias is None
    assert m.rel_h.shape == (32, 7) and m.rel_w.shape == (32, 7)  # k = 7, half the dims each
