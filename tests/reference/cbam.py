"""Convolutional Block Attention Module (CBAM), hand-written eager reference.

Paper: Sanghyun Woo, Jongchan Park, Joon-Young Lee, In So Kweon, "CBAM: Convolutional
Block Attention Module", ECCV 2018.
Official code: https://github.com/Jongchan/attention-module (MODELS/cbam.py).

Channel attention, then spatial attention, each applied to the running feature:

    s_c = sigmoid( sum_{p in pool_types} MLP(pool_p(x)) )      MLP = fc2 . relu . fc1 (shared)
    x1  = x * s_c                                               (per channel)
    s_s = sigmoid( BN( conv7x7( [max_c(x1), mean_c(x1)] ) ) )
    y   = x1 * s_s                                              (per position)

Defaults (all from the official code, which agree with the paper unless noted):
- reduction=16: `reduction_ratio=16` in the official ChannelGate; the paper's r=16.
- pool_types=("avg", "max"): the official default and the paper's best combination.
  Published variants: any non-empty subset of "avg", "max", "lp" (L2 power pooling),
  "lse" (log-sum-exp pooling); the official code implements all four.
- kernel_size=7: the official SpatialGate hard-codes 7 (paper's ablation winner).
- spatial_bn=True: the official spatial conv is conv(2->1, 7x7, bias=False) followed by
  BatchNorm2d(1, eps=1e-5, momentum=0.01) and no ReLU. The paper writes only
  sigmoid(f7x7([...])) with no BN; spatial_bn=False gives that form (conv with a bias).
- no_spatial=False: the official `no_spatial` switch (channel attention only).

Where paper and official code disagree (official code followed):
- Order of the two pooled maps fed to the 7x7 conv: the paper writes [AvgPool; MaxPool],
  the official ChannelPool concatenates (max, mean). Input channel 0 of `conv.weight`
  is therefore the channel-max map, channel 1 the channel-mean map.
- BN after the spatial conv (see spatial_bn above).

Choices:
- The shared MLP is two nn.Linear (`fc1`, `fc2`, with bias, as in the official code).
- Hidden width is max(1, channels // reduction); the floor only matters for toy sizes.
- Global pooling is over the full H x W extent (the official code pools with a kernel of
  the full spatial size, which is the same thing).
- Initialisation: PyTorch defaults (the official code also uses defaults).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_POOLS = ("avg", "max", "lp", "lse")


class CBAM(nn.Module):
    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        pool_types: Sequence[str] = ("avg", "max"),
        kernel_size: int = 7,
        spatial_bn: bool = True,
        no_spatial: bool = False,
    ):
        super().__init__()
        pool_types = tuple(pool_types)
        if not pool_types or any(p not in _POOLS for p in pool_types):
            raise ValueError(f"pool_types must be a non-empty subset of {_POOLS}, got {pool_types}")
        hidden = max(1, channels // reduction)
        self.channels = channels
        self.pool_types = pool_types
        self.no_spatial = no_spatial
        # channel gate: one MLP shared by every pooled descriptor
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        if not no_spatial:
            self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=not spatial_bn)
            self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01) if spatial_bn else None

    @staticmethod
    def _pool(x: torch.Tensor, kind: str) -> torch.Tensor:
        flat = x.flatten(2)
        if kind == "avg":
            return flat.mean(dim=2)
        if kind == "max":
            return flat.amax(dim=2)
        if kind == "lp":  # L2 power-average pooling over the whole map
            return flat.pow(2).sum(dim=2).sqrt()
        return torch.logsumexp(flat, dim=2)  # "lse"

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """s_c[B, C]."""
        logits = sum(self.fc2(torch.relu(self.fc1(self._pool(x, p)))) for p in self.pool_types)
        return torch.sigmoid(logits)

    def spatial_gate(self, x: torch.Tensor) -> torch.Tensor:
        """s_s[B, 1, H, W] computed from the (channel-refined) feature x."""
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        y = self.conv(pooled)
        if self.bn is not None:
            y = self.bn(y)
        return torch.sigmoid(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel_gate(x)[:, :, None, None]
        if not self.no_spatial:
            x = x * self.spatial_gate(x)
        return x


Reference = CBAM
