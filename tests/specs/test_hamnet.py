"""hamnet against tests/reference/hamnet.py: V2 and V1, groups, train/eval step counts, one-step and full
gradients. Both sides draw their random bases from the global RNG, seeded alike before every forward."""

import pytest
import torch

import attndsl
import tests.oracle
from tests.oracle import check_against_reference
from tests.reference.hamnet import HamNet

BUILD = attndsl.build  # unpatched: the fixture below seeds the oracle's modules only


def _seed(module, args):
    torch.manual_seed(1234)  # the same fresh bases for the spec and the reference


@pytest.fixture(autouse=True)
def same_random_bases(monkeypatch):
    def build(*a, **kw):
        m = BUILD(*a, **kw)
        m.register_forward_pre_hook(_seed)
        return m

    monkeypatch.setattr(tests.oracle.attndsl, "build", build)


def reference(params):
    ref = HamNet(**params)
    ref.register_forward_pre_hook(_seed)
    return ref


SHAPES = [
    {"x": [2, 16, 6, 7]},  # odd, non-square
    {"x": [1, 16, 5, 3]},  # batch 1
    {"x": [3, 16, 4, 4]},
]


@pytest.mark.parametrize(
    "params",
    [
        {"ham_channels": 12, "rank": 5},  # V2, one-step gradient, 6 train / 7 eval steps
        {"ham_channels": 12, "rank": 4, "groups": 3, "train_steps": 2, "eval_steps": 4},
        {"ham_channels": 8, "rank": 3, "one_step_grad": False, "train_steps": 3, "eval_steps": 2},
        {"ham_channels": 8, "rank": 6, "version": "V1", "inv_t": 0.5},
        {"ham_channels": 6, "rank": 2, "train_steps": 0, "eval_steps": 0},
    ],
)
def test_matches_reference(params):
    params = {"channels": 16, **params}
    check_against_reference("hamnet", params, reference(params), SHAPES)


def test_default_widths():
    check_against_reference("hamnet", {"channels": 8}, reference({"channels": 8}), [{"x": [2, 8, 3, 5]}])
    m = BUILD("hamnet", channels=64)  # state dict keys as the reference's: cheese.0, cheese.1...
    assert m.lower_bread.weight.shape == (512, 64, 1, 1) and m.lower_bread.bias is not None
    assert m.get_submodule("cheese.0").weight.shape == (512, 512, 1, 1)
    assert m.upper_bread.weight.shape == (64, 512, 1, 1) and m.upper_bread.bias is None


def test_bases_are_fresh_every_forward():
    """rand_init=True: a new draw each call, reproducible from the global seed."""
    m = BUILD("hamnet", channels=8, ham_channels=8, rank=3).double().eval()
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    torch.manual_seed(0)
    a = m(x)
    b = m(x)
    torch.manual_seed(0)
    assert not torch.equal(a, b)
    torch.testing.assert_close(m(x), a)
