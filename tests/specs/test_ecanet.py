"""ecanet against tests/reference/ecanet.py, at 1-D, 2-D and 3-D inputs, ECA and ECA-NS."""

import pytest

from tests.oracle import check_against_reference
from tests.reference.ecanet import ECA

SHAPES = [
    {"x": [2, None, 7, 9]},  # 2-D, non-square, odd
    {"x": [1, None, 5]},  # 1-D, batch 1
    {"x": [3, None, 3, 4, 5]},  # 3-D
]


def shapes(c):
    return [{"x": [s["x"][0], c, *s["x"][2:]]} for s in SHAPES]


@pytest.mark.parametrize(
    "channels,k_size,shared",
    [
        (64, None, True),  # adaptive k = 3
        (256, None, True),  # adaptive k = 5
        (20, 5, True),  # fixed k
        (64, None, False),  # ECA-NS
        (12, 7, False),  # ECA-NS, k close to C (padding dominates)
    ],
)
def test_matches_reference(channels, k_size, shared):
    params = {"channels": channels, "shared": shared}
    if k_size is not None:
        params["k_size"] = k_size
    check_against_reference("ecanet", params, ECA(channels, k_size=k_size, shared=shared), shapes(channels))


def test_adaptive_gamma_b():
    check_against_reference("ecanet", {"channels": 512, "gamma": 3, "b": 2}, ECA(512, gamma=3, b=2), shapes(512)[:1])


def test_adaptive_kernel_size_is_the_papers():
    import attndsl
    from tests.reference.ecanet import adaptive_kernel_size

    for c, k in [(64, 3), (256, 5), (512, 5), (1024, 5), (2048, 7)]:
        m = attndsl.build("ecanet", channels=c)
        assert m.conv.weight.shape == (1, 1, k) and adaptive_kernel_size(c) == k
    assert attndsl.build("ecanet", channels=64, shared=False).conv.weight.shape == (64, 1, 3)
