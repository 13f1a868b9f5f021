"""san against tests/reference/san.py: pairwise and patchwise, footprints, sharing, relation widths."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.san import SAN

SHAPES = [
    {"x": [2, 32, 6, 7]},  # odd, non-square
    {"x": [1, 32, 5, 4]},  # batch 1
    {"x": [3, 32, 4, 4]},
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official: k = 7, C/16, C/4, share 8
        {"kernel_size": 3, "share_planes": 4},
        {"kernel_size": 5, "rel_planes": 3, "out_planes": 12, "share_planes": 3},
        {"sa_type": "patchwise"},
        {"sa_type": "patchwise", "kernel_size": 3, "rel_planes": 4, "out_planes": 16, "share_planes": 2},
        {"kernel_size": 1, "out_planes": 6, "share_planes": 1},
    ],
)
def test_matches_reference(params):
    p = {"channels": 32, **params}
    check_against_reference("san", p, SAN(**p), SHAPES)  # reflection padding: H, W > k // 2


def test_one_pixel_wide():
    p = {"channels": 32, "kernel_size": 1, "out_planes": 8}
    check_against_reference("san", p, SAN(**p), [{"x": [2, 32, 1, 5]}, {"x": [2, 32, 3, 1]}])


def test_defaults_are_the_officials():
    m = attndsl.build("san", channels=64)
    assert m.conv1.weight.shape == (4, 64, 1, 1) and m.conv3.weight.shape == (16, 64, 1, 1)
    assert m.get_submodule("conv_w.0").num_features == 6  # rel + 2
    assert m.get_submodule("conv_w.5").weight.shape == (2, 4, 1, 1)  # out / share attention channels
    mp = attndsl.build("san", channels=64, sa_type="patchwise")
    assert mp.get_submodule("conv_w.0").num_features == 4 * 50  # rel (k k + 1)
    assert mp.get_submodule("conv_w.5").weight.shape == (98, 2, 1, 1)  # k k (out / share)
