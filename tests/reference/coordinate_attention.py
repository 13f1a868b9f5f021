"""Coordinate attention, hand-written eager reference.

Paper: Qibin Hou, Daquan Zhou, Jiashi Feng, "Coordinate Attention for Efficient Mobile
Network Design", CVPR 2021.
Official code: https://github.com/Andrew-Qibin/CoordAttention (the CoordAtt module).

    z_h[c, h] = mean_w x[c, h, w]                 z_w[c, w] = mean_h x[c, h, w]
    f         = act( BN( conv1x1_{C->mip}( [z_h ; z_w] ) ) )     (concatenated along H+W)
    f_h, f_w  = split(f, [H, W])
    a_h = sigmoid( conv_h(f_h) ),  a_w = sigmoid( conv_w(f_w) )      conv_h, conv_w: 1x1 mip->C
    y[c, h, w] = x[c, h, w] * a_h[c, h] * a_w[c, w]

Defaults (official code; the paper's r=32 agrees):
- reduction=32 and min_hidden=8: mip = max(8, C // 32) (official `mip = max(8, inp //
  reduction)`).
- activation="hswish": the official code's h_swish, x * relu6(x + 3) / 6 (the paper
  only says "non-linear activation"). Variant: "relu".
- All three 1x1 convs keep their bias (official nn.Conv2d defaults); BN with PyTorch
  defaults after the shared conv.

Choices:
- The official module has separate input and output widths (inp, oup); as an
  attention block multiplying x, output width = channels.
- The 1x1 convs are kept as nn.Conv2d (`conv1`, `conv_h`, `conv_w`, official names): the
  mechanism is defined on 2-D maps only.
- Initialisation: PyTorch defaults, as in the official code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CoordinateAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 32, min_hidden: int = 8, activation: str = "hswish"):
        super().__init__()
        if activation not in ("hswish", "relu"):
            raise ValueError(f"activation must be 'hswish' or 'relu', got {activation!r}")
        mip = max(min_hidden, channels // reduction)
        self.activation = activation
        self.conv1 = nn.Conv2d(channels, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv_h = nn.Conv2d(mip, channels, 1)
        self.conv_w = nn.Conv2d(mip, channels, 1)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3) / 6 if self.activation == "hswish" else torch.relu(x)

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a_h[B, C, H, 1] and a_w[B, C, 1, W]."""
        h, w = x.shape[-2:]
        z_h = x.mean(dim=3, keepdim=True)  # [B, C, H, 1]
        z_w = x.mean(dim=2, keepdim=True).transpose(2, 3)  # [B, C, W, 1]
        f = self._act(self.bn1(self.conv1(torch.cat([z_h, z_w], dim=2))))
        f_h, f_w = torch.split(f, [h, w], dim=2)
        return torch.sigmoid(self.conv_h(f_h)), torch.sigmoid(self.conv_w(f_w.transpose(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a_h, a_w = self.attention(x)
        return x * a_h * a_w


Reference = CoordinateAttention
