"""glimpse against tests/reference/glimpse.py: sampled (train) and mean (eval) locations, other sizes.

The spec takes the policy's standard normal draws as an input `noise`; the reference draws them
itself from a `generator`. Both get the same draws: the test's noise comes from a generator
seeded with NOISE_SEED, and the reference is handed a generator in the same state. In eval mode
both emit the mean location whatever the noise (other draws are fed to show it is ignored).
"""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.glimpse import GlimpseNetworkStep
from tests.specs.sampled_location import draws as sampled_draws, inputs as sampled_inputs, sampled

NOISE_SEED = 4321

# spec lstmN_ih / lstmN_hh linear layers -> the reference's nn.LSTMCell lstmN
KEY_MAP = {f"lstm{n}_{k}.{w}": f"lstm{n}.{w}_{k}" for n in (1, 2) for k in ("ih", "hh") for w in ("weight", "bias")}


SampledReference = sampled(GlimpseNetworkStep, NOISE_SEED)


def draws(shape):
    return sampled_draws(shape, NOISE_SEED)


def inputs(noise):
    return sampled_inputs(noise, NOISE_SEED)


def check(spec_params, ref, sizes):
    c, hidden = spec_params["channels"], ref.hidden_size
    shapes = [{"x": [b, c, hh, ww], "l": [b, 2], "h": [b, 4, hidden], "noise": [b, 2]} for b, hh, ww in sizes]
    for mode, noise in (("train", True), ("eval", False)):
        check_against_reference(
            "glimpse", spec_params, ref, shapes, key_map=KEY_MAP, modes=(mode,), input_fn=inputs(noise)
        )


def test_defaults():  # 2 scales of 8x8, convs 64-64-128, 512-d LSTMs
    check({"channels": 1}, SampledReference(1), [(2, 28, 28), (1, 13, 11)])  # batch 1, odd, non-square


@pytest.mark.parametrize(
    "params",
    [
        {
            "glimpse_size": 4,
            "num_scales": 3,
            "conv_channels": [6, 5, 7],
            "conv_kernels": [3, 3, 1],
            "features": 12,
            "hidden_size": 12,
        },
        {
            "glimpse_size": 5,
            "num_scales": 1,
            "conv_channels": [4, 4, 4],
            "conv_kernels": [1, 7, 5],
            "features": 9,
            "hidden_size": 7,
            "loc_std": 0.3,
        },  # (odd kernels: k // 2 keeps g x g)
        {
            "glimpse_size": 3,
            "num_scales": 2,
            "scale_factor": 3,
            "conv_channels": [4, 6, 8],
            "features": 10,
            "hidden_size": 6,
        },
    ],
)
def test_variants(params):
    ref_params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    check({"channels": 3, **params}, SampledReference(3, **ref_params), [(2, 17, 20), (1, 9, 7), (3, 6, 6)])


def test_eval_emits_the_mean_and_state_layout():
    m = attndsl.build("glimpse", channels=2, conv_channels=[4, 4, 4], features=8, hidden_size=8).double().eval()
    x, l = torch.randn(3, 2, 10, 12, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)
    rho, h, l_next = m(x, l, torch.zeros(3, 4, 8, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64))
    assert rho.shape == (3, 4, 8, 8) and h.shape == (3, 4, 8)
    torch.testing.assert_close(l_next, m.emission(h[:, 2]))  # mu from r(2)'s hidden state
