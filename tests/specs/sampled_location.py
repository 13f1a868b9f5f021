"""Shared by the ram and glimpse oracle tests: a reference whose Gaussian location policy draws
exactly the `noise` input the spec takes, and the test inputs.

The spec takes the policy's standard normal draws as an input `noise`; the reference draws them
itself from a `generator`. Both get the same draws: the test's noise comes from a generator seeded
with `seed`, and the reference is handed a generator in the same state.
"""

import torch


def draws(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def sampled(reference_cls, seed):
    """reference_cls with forward(x, l, h, noise), its policy drawing exactly `noise`."""

    class SampledReference(reference_cls):
        def forward(self, x, l, h, noise):
            if self.training:
                assert torch.equal(noise, draws(noise.shape, seed).to(noise.dtype)), "noise is not the generator's draw"
            rho, h_next, l_next = super().forward(x, l, h, generator=torch.Generator().manual_seed(seed))
            # the reference's draw is a constant; the spec's l_next = mu + loc_std * noise also has the
            # pathwise gradient loc_std w.r.t. its noise input: add it with value 0 so input grads compare
            if self.training:
                l_next = l_next + self.loc_std * (noise - noise.detach())
            return rho, h_next, l_next

    return SampledReference


def inputs(noise, seed):
    """input_fn for check_against_reference: the generator's draws as noise (train) or other ones (eval)."""

    def make(name, shape, gen):
        if name == "noise":
            return draws(shape, seed) if noise else torch.randn(*shape, generator=gen, dtype=torch.float64)
        if name == "l":  # locations mostly inside the image; some patches reach past the border
            return torch.rand(*shape, generator=gen, dtype=torch.float64) * 1.6 - 0.8
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    return make
