"""tam against tests/reference/tam.py: 5-D video inputs, kernel/stride/padding and alpha/beta variants."""

import pytest

from tests.oracle import check_against_reference
from tests.reference.tam import TemporalAdaptiveModule


def shapes(channels, frames):
    return [
        {"x": [2, channels, frames, 7, 9]},  # non-square, odd
        {"x": [1, channels, frames, 5, 4]},  # batch 1
        {"x": [3, channels, frames, 1, 3]},
    ]


@pytest.mark.parametrize(
    "channels,frames,params",
    [
        (32, 8, {}),  # official: K=3, stride 1, pad 1, alpha 2, beta 4
        (16, 5, {"kernel_size": 5, "padding": 2, "alpha": 3, "beta": 2}),
        (16, 7, {"stride": 2}),  # strided temporal conv: T' = 4
        (6, 4, {"kernel_size": 3, "padding": 0, "beta": 8}),  # no padding: T' = 2; hidden floors at 1
    ],
)
def test_matches_reference(channels, frames, params):
    p = {"channels": channels, "frames": frames, **params}
    check_against_reference("tam", p, TemporalAdaptiveModule(**p), shapes(channels, frames))


def test_defaults_are_the_official_code():
    import attndsl

    m = attndsl.build("tam", channels=64, frames=8)
    assert m.global_fc1.weight.shape == (16, 8)  # T -> alpha * T
    assert m.global_fc2.weight.shape == (3, 16)  # K = 3
    assert m.local_conv1.weight.shape == (16, 64, 3)  # C -> C / 4
