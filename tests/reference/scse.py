"""Concurrent spatial and channel squeeze & excitation (scSE), hand-written eager reference.

Papers: Abhijit Guha Roy, Nassir Navab, Christian Wachinger, "Recalibrating Fully
Convolutional Networks with Spatial and Channel 'Squeeze & Excitation' Blocks", IEEE
Transactions on Medical Imaging 2018 (TMI18, the catalog's reference); first published
as "Concurrent Spatial and Channel Squeeze & Excitation in Fully Convolutional
Networks", MICCAI 2018.
Official code: https://github.com/ai-med/squeeze_and_excitation
(squeeze_and_excitation/squeeze_and_excitation.py, and a 3-D version).

    cSE(x) = x * sigmoid( fc2( relu( fc1( GAP(x) ) ) ) )        (per channel)
    sSE(x) = x * sigmoid( w . x + b )                           (per position; 1x1 conv C -> 1)
    y      = max( cSE(x), sSE(x) )                              (fusion="max")

Defaults (official code):
- reduction=2: the official ChannelSELayer / ChannelSpatialSELayer default
  `reduction_ratio=2` (not SENet's 16; the F-CNN layers it targets are narrow).
- fusion="max": the official ChannelSpatialSELayer takes the element-wise maximum, the
  aggregation the TMI paper selects ("max-out"). Published variants: "add" (the MICCAI
  paper's element-wise addition) and "mul" (element-wise multiplication, compared in the
  TMI paper). The TMI paper also compares concatenation, which doubles the channel count;
  it is not offered here since the catalog's output has C channels.
- All layers keep their bias (official nn.Linear / nn.Conv2d defaults).

Choices:
- Rank-polymorphic: accepts x[B, C, *spatial] with 1, 2 or 3 spatial dims (the official
  code has 2-D and 3-D versions of the same block). So that parameter shapes do not
  depend on the rank, the sSE 1x1 convolution is stored as nn.Linear(C, 1) (`conv`,
  weight [1, C], bias [1]) applied over the channel axis at every position; the cSE
  layers are nn.Linear (`fc1` [C/r, C], `fc2` [C, C/r]) as in the official code.
- Hidden width is max(1, channels // reduction).
- Initialisation: PyTorch defaults, as in the official code.
"""

from __future__ import annotations

import torch
from torch import nn


class SCSE(nn.Module):
    def __init__(self, channels: int, reduction: int = 2, fusion: str = "max"):
        super().__init__()
        if fusion not in ("max", "add", "mul"):
            raise ValueError(f"fusion must be 'max', 'add' or 'mul', got {fusion!r}")
        hidden = max(1, channels // reduction)
        self.fusion = fusion
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.conv = nn.Linear(channels, 1)

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """cSE weights s[B, C]."""
        pooled = x.mean(dim=tuple(range(2, x.dim())))
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(pooled))))

    def spatial_gate(self, x: torch.Tensor) -> torch.Tensor:
        """sSE map q[B, 1, *spatial]."""
        q = self.conv(x.movedim(1, -1)).movedim(-1, 1)
        return torch.sigmoid(q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.channel_gate(x)
        cse = x * s.view(*s.shape, *([1] * (x.dim() - 2)))
        sse = x * self.spatial_gate(x)
        if self.fusion == "max":
            return torch.maximum(cse, sse)
        if self.fusion == "add":
            return cse + sse
        return cse * sse


Reference = SCSE
