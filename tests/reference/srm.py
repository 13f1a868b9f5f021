"""Style-based Recalibration Module (SRM), hand-written eager reference.

Paper: HyunJae Lee, Hyo-Eun Kim, Hyeonseob Nam, "SRM: A Style-based Recalibration Module
for Convolutional Neural Networks", arXiv:1903.10829, 2019 (ICCV 2019).
Official code: https://github.com/hyunjaelee410/style-based-recalibration-module
(`SRMLayer` in models/recalibration_modules.py).

    t_c = [mean_c(x), std_c(x)]                 style pooling over all spatial positions
    z_c = w_c0 · mean_c + w_c1 · std_c          channel-wise fully connected (CFC), no bias
    s   = sigmoid(BN(z))                         y = x · s   (per channel)

Defaults (official code):
- `cfc` is a [C, 2] parameter initialised to zero (so at initialisation z = 0 and, with a
  fresh BatchNorm, s = 0.5 for every channel: y = x / 2).
- Standard deviation: torch's default unbiased estimator (divides by M - 1) with no
  epsilon, as in the official `x.view(N, C, -1).std(dim=2)`. Exposed as `unbiased` and
  `eps` (eps is added to the variance before the square root).
- BatchNorm with PyTorch defaults (eps 1e-5, momentum 0.1), weight 1 and bias 0.

Paper vs code: the paper writes the standard deviation as the square root of the biased
(1/HW) variance; the code uses the unbiased estimator without epsilon. The reference
follows the code; `unbiased=False` gives the paper's form.

Choices:
- BatchNorm1d over z[B, C] instead of the official BatchNorm2d over z[B, C, 1, 1]: the
  statistics and parameters are identical, and the block then accepts x[B, C, *spatial]
  with 1, 2 or 3 spatial dimensions ([C]-shaped parameters, [C, 2] CFC).
- Like any BatchNorm over a pooled vector, training mode needs batch size > 1.
"""

from __future__ import annotations

import torch
from torch import nn


class SRM(nn.Module):
    def __init__(self, channels: int, unbiased: bool = True, eps: float = 0.0):
        super().__init__()
        self.channels = channels
        self.unbiased = unbiased
        self.eps = eps
        self.cfc = nn.Parameter(torch.zeros(channels, 2))
        self.bn = nn.BatchNorm1d(channels)

    def style_pooling(self, x: torch.Tensor) -> torch.Tensor:
        """t[B, C, 2]: per-channel mean and standard deviation over all positions."""
        flat = x.flatten(2)
        mean = flat.mean(dim=2)
        var = flat.var(dim=2, unbiased=self.unbiased)
        std = (var + self.eps).sqrt() if self.eps else var.sqrt()
        return torch.stack((mean, std), dim=2)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.style_pooling(x) * self.cfc).sum(dim=2)
        return torch.sigmoid(self.bn(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(x)
        return x * s.view(*s.shape, *([1] * (x.dim() - 2)))


Reference = SRM
