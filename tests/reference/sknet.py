"""Selective Kernel convolution (SK unit of SKNet), hand-written eager reference.

Paper: Xiang Li, Wenhai Wang, Xiaolin Hu, Jian Yang, "Selective Kernel Networks",
CVPR 2019.
Official code: https://github.com/implus/SKNet (Caffe; models/sknet50.prototxt).

Split, fuse, select, for M branches:

    U_i = relu( BN_i( groupconv3x3_{dilation i+1}(x) ) )          i = 0..M-1
    s   = GAP( sum_i U_i )                                         s[B, C]
    z   = relu( BN( W s ) )                                        W in R^{d x C}, z[B, d]
    a   = softmax over i of ( A_i z )                              A_i in R^{C x d}, a[B, M, C]
    V   = sum_i a_i * U_i                                          (per channel)

Defaults (paper; the official SKNet-50 prototxt agrees):
- branches=2 (M=2): a 3x3 kernel and a "5x5" kernel realised as 3x3 with dilation 2
  (official layers `3x3g32` and `3x3g32d2`, pad 1 and 2). Branch i uses dilation i+1, so
  branches=3 is the paper's M=3 variant (3x3, 5x5, 7x7 receptive fields).
- groups=32 (G=32): both branch convs are grouped (official `group: 32`).
- reduction=16 (r) and min_dim=32 (L): d = max(C // r, L) (official fc1 has 32 outputs at
  C=128).
- stride=1: the branch-conv stride (2 in the downsampling SK units of SKNet-50).
- No biases: every conv/FC in the official prototxt has `bias_term: false`; BN follows
  each branch conv and the squeeze FC.

Choices:
- The squeeze FC (`fc`, [d, C]) and the select FC (`select`, [M*C, d], no bias) are
  nn.Linear on the pooled vector; the Caffe code uses 1x1 convolutions on a 1x1 map. The
  select FC's output is laid out branch-major, row i*C + c is A_i's row c, matching the
  official Reshape to (M, C) before the softmax over branches.
- The official BN momentum (Caffe 0.95) is not reproduced; PyTorch BN defaults are used.
  BatchNorm1d on the pooled vector needs more than one sample in training mode.
- Initialisation: PyTorch defaults (the Caffe fillers are msra / gaussian std 0.01; no
  function identity depends on them).
"""

from __future__ import annotations

import torch
from torch import nn


class _Branch(nn.Module):
    def __init__(self, channels: int, dilation: int, groups: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(
            channels, channels, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class SelectiveKernel(nn.Module):
    def __init__(
        self,
        channels: int,
        branches: int = 2,
        groups: int = 32,
        reduction: int = 16,
        min_dim: int = 32,
        stride: int = 1,
    ):
        super().__init__()
        if channels % groups:
            raise ValueError(f"channels ({channels}) must be divisible by groups ({groups})")
        d = max(channels // reduction, min_dim)
        self.channels = channels
        self.num_branches = branches
        self.branches = nn.ModuleList(_Branch(channels, i + 1, groups, stride) for i in range(branches))
        self.fc = nn.Linear(channels, d, bias=False)
        self.bn = nn.BatchNorm1d(d)
        self.select = nn.Linear(d, branches * channels, bias=False)

    def branch_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """U stacked as [B, M, C, H', W']."""
        return torch.stack([branch(x) for branch in self.branches], dim=1)

    def selection(self, u: torch.Tensor) -> torch.Tensor:
        """Attention weights a[B, M, C] (softmax over branches) from the stacked U."""
        s = u.sum(dim=1).mean(dim=(2, 3))
        z = torch.relu(self.bn(self.fc(s)))
        logits = self.select(z).view(-1, self.num_branches, self.channels)
        return torch.softmax(logits, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.branch_outputs(x)
        a = self.selection(u)
        return (a[..., None, None] * u).sum(dim=1)


Reference = SelectiveKernel
