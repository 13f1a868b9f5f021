"""stn against tests/reference/stn.py: odd, non-square and batch-1 inputs, every sampler variant."""

import pytest
import torch

import attndsl
import tests.oracle
from tests.oracle import check_against_reference
from tests.reference.stn import SpatialTransformer


@pytest.fixture(autouse=True)
def theta_near_identity(monkeypatch):
    """Fully random weights give |theta| ~ 50: every sample lands outside the input, y = 0.

    Keep the oracle's random localisation net but shrink fc2 so that theta = identity plus an
    input-dependent perturbation of ~0.1-0.5: most samples fall inside, some outside (padding).
    """
    plain = tests.oracle.randomize

    def randomize(module, seed=0):
        plain(module, seed)
        with torch.no_grad():
            module.fc2.weight.mul_(0.01)
            module.fc2.bias.mul_(0.2).add_(torch.tensor([1.0, 0, 0, 0, 1, 0], dtype=module.fc2.bias.dtype))

    monkeypatch.setattr(tests.oracle, "randomize", randomize)


SHAPES = [
    {"x": [2, 3, 9, 11]},  # odd, non-square
    {"x": [1, 3, 6, 5]},  # batch 1
    {"x": [3, 3, 4, 4]},  # smaller than the 7x7 kernel
]


@pytest.mark.parametrize(
    "align_corners,padding_mode",
    [
        (False, "zeros"),  # defaults: PyTorch >= 1.3 convention, zeros outside (the paper's sampler)
        (True, "zeros"),  # Torch stnbhwd / PyTorch < 1.3 convention
        (False, "border"),
        (True, "reflection"),
    ],
)
def test_matches_reference(align_corners, padding_mode):
    params = {"align_corners": align_corners, "padding_mode": padding_mode}
    check_against_reference("stn", {"channels": 3, **params}, SpatialTransformer(3, **params), SHAPES)


def test_other_localisation_net():
    params = {"loc_channels": [4, 6], "loc_kernels": [4, 3], "fc_hidden": 12}  # even kernel: padding k // 2
    shapes = [{"x": [2, 5, 7, 10]}, {"x": [1, 5, 3, 8]}]
    ref = SpatialTransformer(5, loc_channels=(4, 6), loc_kernels=(4, 3), fc_hidden=12)
    check_against_reference("stn", {"channels": 5, **params}, ref, shapes)


def test_oracle_inputs_are_not_degenerate():
    m = attndsl.build("stn", channels=3).double()
    tests.oracle.randomize(m)
    y = m(torch.randn(2, 3, 9, 11, dtype=torch.float64))
    assert 0.5 < (y != 0).double().mean() < 1  # mostly inside the input, a few samples outside


def test_starts_as_the_identity():
    m = attndsl.build("stn", channels=4).double()
    assert torch.equal(m.fc2.weight, torch.zeros(6, 32))
    x = torch.randn(2, 4, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(m(x), x)
