"""Bottleneck Attention Module (BAM), hand-written eager reference.

Paper: Jongchan Park, Sanghyun Woo, Joon-Young Lee, In So Kweon, "BAM: Bottleneck
Attention Module", BMVC 2018.
Official code: https://github.com/Jongchan/attention-module (MODELS/bam.py).

Channel and spatial branches in parallel, combined into one 3-D map:

    M_c = fc_final( relu( BN( fc( GAP(x) ) ) ) )                        M_c[B, C, 1, 1]
    M_s = conv1x1( relu(BN(dconv3x3( relu(BN(dconv3x3( relu(BN(conv1x1(x))) ))) ))) )
                                                                       M_s[B, 1, H, W]
    M   = sigmoid( M_c + M_s )          (fusion="sum", broadcast to C x H x W)
    y   = x + x * M = x * (1 + M)

Defaults:
- reduction=16 (r) for both branches: the paper's r=16 and the official default.
- dilation=4 (d) and two dilated 3x3 convs: the paper's d=4 and the official
  `dilation_conv_num=2, dilation_val=4`.
- num_layers=1: one hidden layer in the channel MLP (official `num_layers=1`).
- All convs and FCs keep their bias (official nn.Linear / nn.Conv2d defaults).

Where paper and official code disagree:
- Fusion. The paper combines the branches with element-wise summation (its ablation
  picks sum over product and max) and the catalog says "sum"; the official BAM.forward
  multiplies them: 1 + sigmoid(M_c * M_s). Default fusion="sum" follows the paper;
  fusion="product" reproduces the official code (and the released weights).
- BN placement. The paper's equations put one BN at the end of each branch
  (BN(MLP(...)), BN(f3(f2(f1(f0(x)))))); the official code puts BN + ReLU after every
  hidden layer and no BN on either branch output. The official placement is followed
  (the paper's equations also omit the ReLUs that the code has).

Choices:
- Channel pooling is a true global average; the official code pools with a square
  kernel of size H, which is global only for square maps.
- Parameter names: `fc.i`, `bn_c.i`, `fc_final` for the channel MLP (official
  `gate_c_fc_0`, `gate_c_bn_1`, `gate_c_fc_final`); `reduce`, `bn_reduce`, `dilated.i`, `bn_dilated.i`,
  `final` for the spatial branch (official `gate_s_conv_reduce0`, ...). Channel branch
  first, as in the official module.
- BatchNorm1d on the pooled vector needs more than one sample in training mode.
- Initialisation: PyTorch defaults, as in the official code.
"""

from __future__ import annotations

import torch
from torch import nn


class BAM(nn.Module):
    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        dilation: int = 4,
        num_dilated: int = 2,
        num_layers: int = 1,
        fusion: str = "sum",
    ):
        super().__init__()
        if fusion not in ("sum", "product"):
            raise ValueError(f"fusion must be 'sum' or 'product', got {fusion!r}")
        hidden = max(1, channels // reduction)
        self.fusion = fusion
        # channel branch: MLP with BN + ReLU after each hidden layer
        widths = [channels] + [hidden] * num_layers
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.bn_c = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(num_layers))
        self.fc_final = nn.Linear(hidden, channels)
        # spatial branch: 1x1 reduce, dilated 3x3 convs, 1x1 to one map
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.bn_reduce = nn.BatchNorm2d(hidden)
        self.dilated = nn.ModuleList(
            nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation) for _ in range(num_dilated)
        )
        self.bn_dilated = nn.ModuleList(nn.BatchNorm2d(hidden) for _ in range(num_dilated))
        self.final = nn.Conv2d(hidden, 1, 1)

    def channel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """M_c[B, C, 1, 1] (before the sigmoid)."""
        h = x.mean(dim=(2, 3))
        for fc, bn in zip(self.fc, self.bn_c):
            h = torch.relu(bn(fc(h)))
        return self.fc_final(h)[:, :, None, None]

    def spatial_attention(self, x: torch.Tensor) -> torch.Tensor:
        """M_s[B, 1, H, W] (before the sigmoid)."""
        h = torch.relu(self.bn_reduce(self.reduce(x)))
        for conv, bn in zip(self.dilated, self.bn_dilated):
            h = torch.relu(bn(conv(h)))
        return self.final(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mc = self.channel_attention(x)
        ms = self.spatial_attention(x)
        m = torch.sigmoid(mc + ms if self.fusion == "sum" else mc * ms)
        return x * (1 + m)


Reference = BAM
