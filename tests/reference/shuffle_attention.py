"""Shuffle attention (SA-Net), hand-written eager reference.

Paper: Qing-Long Zhang, Yu-Bin Yang, "SA-Net: Shuffle Attention for Deep Convolutional
Neural Networks", ICASSP 2021.
Official code: https://github.com/wofmanaf/SA-Net (models/sa_resnet.py, class sa_layer).

The C channels are cut into G groups of C/G; each group is split in two halves of
c = C/(2G) channels. Per group (the same parameters for every group):

    channel half x_k:  s_c = sigmoid( W1 * GAP(x_k) + b1 )            [c] scale and shift
                       x_k' = x_k * s_c
    spatial half x_s:  s_s = sigmoid( W2 * GN(x_s) + b2 )             GN: one group per channel
                       x_s' = x_s * s_s
    group output:      concat(x_k', x_s') along channels

The G group outputs are put back in order ([B, C, H, W]) and a channel shuffle with two
groups interleaves the two halves of the channel axis: output channel 2i is input
channel i, output channel 2i + 1 is input channel C/2 + i.

Defaults (official code): groups=64 (sa_layer's default; the paper's G = 64); W1 = W2 = 0,
b1 = b2 = 1, so every gate starts as sigmoid(1); the GroupNorm has C/(2G) groups over
C/(2G) channels (each channel normalised over H x W alone), eps 1e-5, with its own affine
weight (1) and bias (0), applied before W2, b2.

Choices: the four scale/shift parameters are stored as [c] vectors (official
[1, c, 1, 1]); channels must be divisible by 2 * groups (the official reshape needs it).
"""

from __future__ import annotations

import torch
from torch import nn


class ShuffleAttention(nn.Module):
    def __init__(self, channels: int, groups: int = 64, eps: float = 1e-5):
        super().__init__()
        if channels % (2 * groups):
            raise ValueError(f"channels ({channels}) must be divisible by 2 * groups ({2 * groups})")
        self.groups = groups
        c = channels // (2 * groups)
        self.cweight = nn.Parameter(torch.zeros(c))
        self.cbias = nn.Parameter(torch.ones(c))
        self.sweight = nn.Parameter(torch.zeros(c))
        self.sbias = nn.Parameter(torch.ones(c))
        self.gn = nn.GroupNorm(c, c, eps=eps)

    @staticmethod
    def _per_channel(v: torch.Tensor) -> torch.Tensor:
        return v.view(1, -1, 1, 1)

    def gates(self, x: torch.Tensor):
        """The channel gate [B*G, c, 1, 1] and the spatial gate [B*G, c, H, W], with the halves."""
        b, _, h, w = x.shape
        xg = x.reshape(b * self.groups, -1, h, w)
        x_k, x_s = xg.chunk(2, dim=1)
        pooled = x_k.mean(dim=(2, 3), keepdim=True)
        s_c = torch.sigmoid(self._per_channel(self.cweight) * pooled + self._per_channel(self.cbias))
        s_s = torch.sigmoid(self._per_channel(self.sweight) * self.gn(x_s) + self._per_channel(self.sbias))
        return x_k, x_s, s_c, s_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x_k, x_s, s_c, s_s = self.gates(x)
        out = torch.cat([x_k * s_c, x_s * s_s], dim=1).reshape(b, c, h, w)
        # channel shuffle with 2 groups: [B, 2, C/2, H, W] -> [B, C/2, 2, H, W]
        return out.reshape(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)


Reference = ShuffleAttention
