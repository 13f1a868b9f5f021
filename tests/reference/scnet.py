"""SCNet: self-calibrated convolution.

Paper: Jiang-Jiang Liu, Qibin Hou, Ming-Ming Cheng, Changhu Wang, Jiashi Feng,
"Improving Convolutional Networks with Self-Calibrated Convolutions", CVPR 2020.
Official code: MCG-NKU/SCNet (`scnet.py`, SCConv and SCBottleneck; also
published as backseason/SCNet).

Shapes: x[B, C, H, W] -> [B, C, H', W'] (H' = H, W' = W at stride 1), C even.

Paper, Sec. 3.1: split x along channels into X1, X2 (C/2 each); four 3x3
filters K1..K4 (C/2 -> C/2):
  T1  = AvgPool_r(X1)
  X1' = Up(K2 * T1)                        (back to the size of X1)
  Y1' = (K3 * X1) . sigmoid(X1 + X1')      (the self-calibration)
  Y1  = K4 * Y1'
  Y2  = K1 * X2
  Y   = [Y1, Y2]                           (concatenated along channels)

Defaults and where they come from (official code):
- pooling_r=4: SCBottleneck.pooling_r.
- each K is conv3x3 (no bias) + BatchNorm; K4 and K1 are followed by ReLU
  (official SCConv.k4 and SCBottleneck.k1); norm=False drops the BatchNorms and
  ReLUs and gives the paper's bare convolutions (with bias=False kept).
- upsample="nearest": official code calls F.interpolate(k2(x), size) with the
  default mode, nearest. The paper calls Up "bilinear interpolation";
  upsample="bilinear" (align_corners=False) gives the paper's version.
- stride=1: K4 and K1 carry the stride (official code).

Paper vs code (split): the paper splits the input's channels; the official
SCBottleneck instead makes X1 and X2 with two separate 1x1 conv + BN + ReLU
layers from the block input (conv1_b -> SC path, conv1_a -> K1 path), and
concatenates [K1 path, SC path]. This reference implements the convolution
itself as in the paper: X1 = first C/2 channels -> calibrated path, output
[Y1, Y2]; the bottleneck's 1x1 convs belong to the surrounding ResNet block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBN(nn.Module):
    def __init__(self, channels: int, stride: int = 1, norm: bool = True, relu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.act = nn.ReLU() if (relu and norm) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SCNet(nn.Module):
    def __init__(
        self,
        channels: int,
        pooling_r: int = 4,
        stride: int = 1,
        norm: bool = True,
        upsample: str = "nearest",
    ):
        super().__init__()
        if channels % 2:
            raise ValueError(f"SCNet splits channels in halves; got odd channels={channels}")
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {upsample!r}")
        half = channels // 2
        self.pooling_r = pooling_r
        self.upsample = upsample
        # calibrated path (X1 -> Y1) first, then the plain path (X2 -> Y2)
        self.k2 = ConvBN(half, 1, norm)
        self.k3 = ConvBN(half, 1, norm)
        self.k4 = ConvBN(half, stride, norm, relu=True)
        self.k1 = ConvBN(half, stride, norm, relu=True)

    def calibration(self, x1: torch.Tensor) -> torch.Tensor:
        """sigmoid(X1 + Up(K2 * AvgPool_r(X1))), same shape as x1."""
        t = F.avg_pool2d(x1, self.pooling_r, self.pooling_r)
        kw = {} if self.upsample == "nearest" else {"align_corners": False}
        up = F.interpolate(self.k2(t), size=x1.shape[2:], mode=self.upsample, **kw)
        return torch.sigmoid(x1 + up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        y1 = self.k4(self.k3(x1) * self.calibration(x1))
        y2 = self.k1(x2)
        return torch.cat((y1, y2), dim=1)


Reference = SCNet
