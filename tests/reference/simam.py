"""SimAM, a parameter-free 3-D attention, hand-written eager reference.

Paper: Lingxiao Yang, Ru-Yuan Zhang, Lida Li, Xiaohua Xie, "SimAM: A Simple,
Parameter-Free Attention Module for Convolutional Neural Networks", ICML 2021.
Official code: https://github.com/ZjjConan/SimAM (simam_module; README pseudo-code).

For every neuron t of a channel with M = number of positions, mu and sigma^2 the
channel's mean and variance over its positions, the minimal energy (paper Eq. 5) is

    e_t* = 4 (sigma^2 + lambda) / ( (t - mu)^2 + 2 sigma^2 + 2 lambda )

and the refined feature is y = x * sigmoid(1 / E), i.e. elementwise

    y = x * sigmoid( (x - mu)^2 / (4 (sigma^2 + lambda)) + 1/2 ).

Defaults:
- e_lambda=1e-4: the official module default (`e_lambda = 1e-4`), also the value in
  the released CIFAR checkpoint's name. The README's ImageNet training commands pass
  0.1 instead (--attention_param 0.1), so lambda is dataset-dependent in practice.
- unbiased=True: sigma^2 = sum (x - mu)^2 / (M - 1), as the official code computes it
  (`n = w * h - 1`).

Where paper and official code disagree (official code followed):
- The paper's closed form defines sigma^2 = (1/M) sum (x_i - mu)^2; the official code
  divides by M - 1. unbiased=False gives the paper's literal 1/M.

Choices:
- Rank-polymorphic: mu and sigma^2 are taken over all spatial dims, so the block
  accepts x[B, C, *spatial] with 1, 2 or 3 spatial dims (the energy is defined per
  channel over its neurons; nothing in it is 2-D specific). No parameters.
- With a single position (M = 1) the unbiased variance is undefined (0/0, as in the
  official code); use maps with more than one position.
"""

from __future__ import annotations

import torch
from torch import nn


class SimAM(nn.Module):
    def __init__(self, channels: int | None = None, e_lambda: float = 1e-4, unbiased: bool = True):
        super().__init__()
        # channels is accepted for a uniform constructor; the block has no parameters
        self.channels = channels
        self.e_lambda = e_lambda
        self.unbiased = unbiased

    def inverse_energy(self, x: torch.Tensor) -> torch.Tensor:
        """1 / e_t* for every neuron, same shape as x."""
        dims = tuple(range(2, x.dim()))
        m = 1
        for d in dims:
            m *= x.shape[d]
        d2 = (x - x.mean(dim=dims, keepdim=True)).pow(2)
        var = d2.sum(dim=dims, keepdim=True) / (m - 1 if self.unbiased else m)
        return d2 / (4 * (var + self.e_lambda)) + 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.inverse_energy(x))


Reference = SimAM
