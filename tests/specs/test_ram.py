"""ram against tests/reference/ram.py: the sampled (train) and mean (eval) location, several scales.

The spec takes the policy's standard normal draws as an input `noise`; the reference draws them
itself from a `generator`. Both get the same draws: the test's noise comes from a generator
seeded with NOISE_SEED, and the reference is handed a generator in the same state. In eval mode
both emit the mean location whatever the noise (other draws are fed to show it is ignored).
"""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.ram import RecurrentAttentionStep
from tests.specs.sampled_location import draws as sampled_draws, inputs as sampled_inputs, sampled

NOISE_SEED = 1234


SampledReference = sampled(RecurrentAttentionStep, NOISE_SEED)


def draws(shape):
    return sampled_draws(shape, NOISE_SEED)


def inputs(noise):
    return sampled_inputs(noise, NOISE_SEED)


def check(params, shapes):
    spec_params = {"channels": shapes[0]["x"][1], **params}
    for mode, noise in (("train", True), ("eval", False)):
        check_against_reference(
            "ram", spec_params, SampledReference(**spec_params), shapes, modes=(mode,), input_fn=inputs(noise)
        )


def shapes(c, hidden, sizes):
    return [{"x": [b, c, hh, ww], "l": [b, 2], "h": [b, hidden], "noise": [b, 2]} for b, hh, ww in sizes]


def test_defaults():  # MNIST model: one 8x8 glimpse
    check({}, shapes(1, 256, [(2, 28, 28), (1, 13, 11), (3, 6, 9)]))  # batch 1; image smaller than the patch


@pytest.mark.parametrize(
    "params",
    [
        {"glimpse_size": 4, "num_scales": 3},  # translated-MNIST-like: 3 scales (4, 8, 16 pixels)
        {
            "glimpse_size": 3,
            "num_scales": 2,
            "scale_factor": 3,
            "glimpse_hidden": 10,
            "loc_hidden": 6,
            "glimpse_features": 12,
            "hidden_size": 9,
            "loc_std": 0.5,
        },
    ],
)
def test_variants(params):
    hidden = params.get("hidden_size", 256)
    check(params, shapes(3, hidden, [(2, 17, 20), (1, 9, 7)]))


def test_eval_emits_the_mean_and_the_crop_is_exact():
    m = attndsl.build("ram", channels=1, glimpse_size=2).double()
    x = torch.arange(36, dtype=torch.float64).reshape(1, 1, 6, 6)
    l = torch.tensor([[4 / 6 - 1, 2 / 6 - 1]], dtype=torch.float64)  # pixel (x, y) = (1.5, 0.5): (2c + 1) / W - 1
    h, noise = torch.zeros(1, 256, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    rho, h_next, l_train = m.train()(x, l, h, noise)
    torch.testing.assert_close(rho[0, 0], x[0, 0, 0:2, 1:3])  # rows 0-1, columns 1-2
    torch.testing.assert_close(l_train, m.locator(h_next) + 0.11)
    torch.testing.assert_close(m.eval()(x, l, h, noise)[2], m.locator(h_next))
