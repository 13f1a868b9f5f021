"""EANet: external attention with double normalisation, hand-written reference.

Paper: Meng-Hao Guo, Zheng-Ning Liu, Tai-Jiang Mu, Shi-Min Hu, "Beyond
Self-attention: External Attention using Two Linear Layers for Visual Tasks",
arXiv 2105.02358 (2021), IEEE TPAMI 2022.
Official code: MenghaoGuo/EANet (model_torch.py, class External_attention).

Computation for x[B, C, H, W], N = H*W positions, S memory units:
  f   = conv1(x)                          1x1 conv C -> C, with bias
  a   = M_k f                             linear_0: C -> S (no bias)      [B, S, N]
  a   = softmax over the N positions      (first normalisation)
  a   = a / (1e-9 + sum over the S units) (second normalisation, l1)
  y   = M_v a                             linear_1: S -> C (no bias)      [B, C, N]
  out = relu(x + BN(conv2(y)))            conv2: 1x1 conv C -> C, no bias

Defaults (official code): S = 64 memory units (self.k = 64); the EANet
segmentation head uses C = 512. Initialisation: conv weights
N(0, sqrt(2 / (k*k*out))), BN weight 1 / bias 0; linear_1 starts as the
transpose of linear_0 (official: `linear_1.weight.data = linear_0.weight.data.
permute(1, 0, 2)`, after which the in-place init of linear_1 fills the shared
storage with N(0, sqrt(2 / C))). Here the two are separate parameters with
linear_0 = linear_1^T at initialisation (tie_init=True); the official assignment
actually makes the two Parameters share storage for the whole training (an
implementation accident, not described in the paper), which a reference module
with independent parameters does not reproduce.

Variants: memory_units (S), tie_init. The memory layers are nn.Conv1d with kernel 1
as in the official code (weights [S, C, 1] and [C, S, 1]).

Paper vs code: they agree on the double normalisation (paper eq.: softmax over
the N positions of each memory unit, then l1 over the S units at each position).
The only divergence is the storage sharing of linear_0/linear_1 noted above.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EANet(nn.Module):
    def __init__(self, channels: int, memory_units: int = 64, tie_init: bool = True):
        super().__init__()
        self.k = memory_units
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.linear_0 = nn.Conv1d(channels, memory_units, 1, bias=False)
        self.linear_1 = nn.Conv1d(memory_units, channels, 1, bias=False)
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.Conv1d):
                n = m.kernel_size[0] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if tie_init:
            with torch.no_grad():
                self.linear_0.weight.copy_(self.linear_1.weight.permute(1, 0, 2))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Doubly normalised attention map a[B, S, N] for the input x."""
        b, c = x.shape[:2]
        f = self.conv1(x).reshape(b, c, -1)
        a = F.softmax(self.linear_0(f), dim=-1)
        return a / (1e-9 + a.sum(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear_1(self.attention(x)).reshape(x.shape)
        return F.relu(x + self.conv2(y))


Reference = EANet
