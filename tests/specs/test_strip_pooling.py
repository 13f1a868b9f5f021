"""strip_pooling against tests/reference/strip_pooling.py: the official SPBlock and the paper's form."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.strip_pooling import StripPooling

SHAPES = [
    {"x": [2, 16, 7, 9]},  # non-square, odd
    {"x": [1, 16, 5, 12]},  # batch 1 (the BNs see a whole strip)
    {"x": [3, 16, 1, 6]},  # a single row
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official SPBlock: BN after the strip convs, ReLU after the sum
        {"norm": False, "relu": False},  # the paper's equations
        {"norm": False},
        {"relu": False},
    ],
)
def test_matches_reference(params):
    check_against_reference("strip_pooling", {"channels": 16, **params}, StripPooling(16, **params), SHAPES)


def test_defaults_are_the_official_code():
    m = attndsl.build("strip_pooling", channels=32)
    assert m.conv1.weight.shape == (32, 32, 3, 1) and m.conv1.bias is None  # official (3, 1) conv, no bias
    assert m.conv2.weight.shape == (32, 32, 1, 3)
    assert m.conv3.bias is not None and hasattr(m, "bn1") and hasattr(m, "bn2")
    assert attndsl.build("strip_pooling", channels=32, norm=False).conv2.bias is not None
