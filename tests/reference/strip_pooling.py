"""Strip pooling module (SPM) of SPNet.

Paper: Qibin Hou, Li Zhang, Ming-Ming Cheng, Jiashi Feng, "Strip Pooling:
Rethinking Spatial Pooling for Scene Parsing", CVPR 2020.
Official code: houqb/SPNet (formerly Andrew-Qibin/SPNet), `models/resnet.py`
SPBlock (the SPM inserted in the ResNet bottleneck as out * spm(out));
`models/customize.py` StripPooling is the mixed pooling module (MPM) of the
segmentation head, a different block, not implemented here.

Shapes: x[B, C, H, W] -> [B, C, H, W].

Paper, Sec. 3.2:
  y^h[c, i] = mean_j x[c, i, j]      (horizontal strip, H x 1)
  y^v[c, j] = mean_i x[c, i, j]      (vertical strip, 1 x W)
  each goes through a 1-D conv of kernel 3 (along H, resp. along W),
  y[c, i, j] = y^h[c, i] + y^v[c, j]  (expand and sum)
  z = x . sigmoid(f(y)), f a 1x1 conv.

Defaults and where they come from (official SPBlock, built as SPBlock(planes, planes)):
- conv1: (3, 1) conv over the H x 1 strip, conv2: (1, 3) over the 1 x W strip,
  C -> C, no bias, each followed by BatchNorm (norm=True);
- ReLU after the sum (relu=True);
- conv3: 1x1 conv C -> C with bias, then sigmoid; the block returns x * mask.
The paper's equations have neither the BatchNorms nor the ReLU: norm=False,
relu=False gives the paper's form (the strip convs then get a bias).
Ambiguity: one stored version of the official SPBlock gives conv1/conv2
bias=True next to the BatchNorm; the version followed here has bias=False
(the bias is redundant before BatchNorm).
"""

from __future__ import annotations

import torch
from torch import nn


class StripPooling(nn.Module):
    def __init__(self, channels: int, norm: bool = True, relu: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0), bias=not norm)
        self.bn1 = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.conv2 = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1), bias=not norm)
        self.bn2 = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.conv3 = nn.Conv2d(channels, channels, 1, bias=True)
        self.relu = nn.ReLU() if relu else nn.Identity()

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """sigmoid(f(y)) in (0, 1), [B, C, H, W]."""
        yh = self.bn1(self.conv1(x.mean(dim=3, keepdim=True)))  # [B, C, H, 1]
        yv = self.bn2(self.conv2(x.mean(dim=2, keepdim=True)))  # [B, C, 1, W]
        return torch.sigmoid(self.conv3(self.relu(yh + yv)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask(x)


Reference = StripPooling
