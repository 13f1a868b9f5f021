"""srm against tests/reference/srm.py, at 1-D, 2-D and 3-D inputs, both std estimators."""

import pytest

from tests.oracle import check_against_reference
from tests.reference.srm import SRM

C = 24
SHAPES = [
    {"x": [2, C, 7, 9]},  # 2-D, non-square, odd
    {"x": [3, C, 5]},  # 1-D
    {"x": [2, C, 3, 4, 5]},  # 3-D
]
BATCH1 = [{"x": [1, C, 5, 6]}, {"x": [1, C, 9]}]  # BatchNorm over [B, C] trains only with B > 1


@pytest.mark.parametrize("params", [{}, {"unbiased": False}, {"eps": 1e-3}, {"unbiased": False, "eps": 1e-5}])
def test_matches_reference(params):
    check_against_reference("srm", {"channels": C, **params}, SRM(C, **params), SHAPES)
    check_against_reference("srm", {"channels": C, **params}, SRM(C, **params), BATCH1, modes=("eval",))


def test_defaults_are_the_official_codes():
    import torch

    import attndsl

    m = attndsl.build("srm", channels=8)
    assert m.cfc.shape == (8, 2) and not m.cfc.any()  # CFC starts at zero
    x = torch.randn(2, 8, 4, 5)
    torch.testing.assert_close(m.eval()(x), x / 2)  # fresh BN, zero CFC: s = 0.5


def test_running_statistics_follow_the_reference():
    # the oracle re-syncs state before each mode, so BN momentum is checked here
    import torch

    import attndsl
    from tests.oracle import randomize, transfer

    built, ref = attndsl.build("srm", channels=C).double(), SRM(C).double()
    randomize(built)
    transfer(built, ref)
    built.train(), ref.train()
    for i in range(3):
        x = torch.randn(4, C, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
        built(x), ref(x)
    for k in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
        torch.testing.assert_close(built.state_dict()[k], ref.state_dict()[k], atol=1e-12, rtol=1e-10)
