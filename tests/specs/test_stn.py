"""stn against tests/reference/stn.py: odd, non-square and batch-1 inputs, every sampler variant."""
import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.stn import SpatialTransformer

SHAPES = [
    {"x": [2, 3, 9, 11]},       # odd, non-square
    {"x": [1, 3, 6, 5]},        # batch 1
    {"x": [3, 3, 4, 4]},        # smaller than the 7x7 kernel
]


@pytest.mark.parametrize("align_corners,padding_mode", [
    (False, "zeros"),           # defaults: PyTorch >= 1.3 convention, zeros outside (the paper's sampler)
    (True, "zeros"),            # Torch stnbhwd / PyTorch < 1.3 convention
    (False, "border"),
    (True, "reflection"),
])
def test_matches_reference(align_corners, padding_mode):
    params = {"align_corners": align_corners, "padding_mode": padding_mode}
    check_against_reference("stn", {"channels": 3, **params}, SpatialTransformer(3, **params), SHAPES)


def test_other_localisation_net():
    params = {"loc_channels": [4, 6], "loc_kernels": [3, 5], "fc_hidden": 12}
    shapes = [{"x": [2, 5, 7, 10]}, {"x": [1, 5, 3, 8]}]
    ref = SpatialTransformer(5, loc_channels=(4, 6), loc_kernels=(3, 5), fc_hidden=12)
    check_against_reference("stn", {"channels": 5, **params}, ref, shapes)


def test_starts_as_the_identity():
    m = attndsl.build("stn", channels=4).double()
    assert torch.equal(m.fc2.weight, torch.zeros(6, 32))
    x = torch.randn(2, 4, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(m(x), x)
