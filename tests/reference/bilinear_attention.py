"""Bilinear attention (bi-attention) with attention-in-attention, eager reference.

Paper: Pengfei Fang, Jieming Zhou, Soumava Kumar Roy, Lars Petersson, Mehrtash Harandi,
"Bilinear Attention Networks for Person Retrieval", ICCV 2019.
Official code: https://github.com/PengfeiFANGanu/Attention-in-Attention-Networks
(`BilinearAttention` in models/bilinear_baseline_AIA.py).

    φ      = relu(BN(conv1x1(x)))                       C -> m = C // reduction channels
    b_p    = Vec(UTri(φ_p φ_pᵀ))                          per position p: the m(m+1)/2 distinct
                                                          products φ_pi φ_pj, i >= j
    inner  = relu(BN(conv1x1(GAP(b))))                   inner channel attention, [B, C, 1, 1]
    outer  = relu(BN(conv1x1(b)))                        outer point-wise attention, [B, C, H, W]
    y      = x · sigmoid(inner · outer)

Defaults (official code): reduction=16 (midChannels = inChannels // 16); each of the three
"conv1x1 + BN + ReLU" blocks has a conv bias (the official ConvBlock uses nn.Conv2d's default
bias=True); output channels equal input channels.

Ordering of Vec(UTri(.)): the official code concatenates the diagonals of the symmetric
outer product, main diagonal first, then offsets 1, 2, ..., m-1; entry (i, j) with
i = j + offset, j ascending within a diagonal. The reference uses the same order, so
its `inner.conv` / `outer.conv` weights line up with the official ones.

Consequences of the official design, kept here: inner and outer are both post-ReLU, so
inner · outer >= 0 and the gate lies in [0.5, 1). The inner branch is a BatchNorm over a
1x1 map, so training mode needs batch size > 1.

Paper vs code: the paper's text (and the survey) writes UTri as the upper-triangular part;
the code takes the lower triangle by diagonals. For a symmetric matrix these are the same
values, only the order differs; the code's order is followed. Only 2-D feature maps are
supported.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=True)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


def bilinear_pairs(m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of Vec(UTri(.)) in the official diagonal-by-diagonal order."""
    rows, cols = [], []
    for offset in range(m):
        for j in range(m - offset):
            rows.append(j + offset)
            cols.append(j)
    return torch.tensor(rows), torch.tensor(cols)


class BilinearAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        m = max(1, channels // reduction)
        pairs = m * (m + 1) // 2
        self.channels = channels
        self.mid_channels = m
        self.phi = ConvBNReLU(channels, m)
        self.inner = ConvBNReLU(pairs, channels)
        self.outer = ConvBNReLU(pairs, channels)
        rows, cols = bilinear_pairs(m)
        self.register_buffer("pair_rows", rows, persistent=False)
        self.register_buffer("pair_cols", cols, persistent=False)

    def bilinear(self, phi: torch.Tensor) -> torch.Tensor:
        """Per-position second-order features [B, m(m+1)/2, H, W]."""
        return phi[:, self.pair_rows] * phi[:, self.pair_cols]

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bilinear(self.phi(x))
        inner = self.inner(b.mean(dim=(2, 3), keepdim=True))
        outer = self.outer(b)
        return torch.sigmoid(inner * outer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


Reference = BilinearAttention
