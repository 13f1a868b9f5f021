"""Temporal Adaptive Module (TAM), hand-written eager reference.

Paper: Zhaoyang Liu, Limin Wang, Wayne Wu, Chen Qian, Tong Lu, "TAM: Temporal Adaptive
Module for Video Recognition", ICCV 2021 (arXiv 2005.06803, 2020).
Official code: https://github.com/liu-zhy/temporal-adaptive-module (ops/temporal_module.py).

Input x[B, C, T, H, W] with T == frames. With g = GAP_{H,W}(x) in R^{B x C x T}:

    local : s      = sigmoid( conv1d_1x1( relu( BN( conv1d_k(g) ) ) ) )        s[B, C, T]
            x1     = x * s                                                     (per channel, frame)
    global: Theta_c = softmax( fc2( relu( BN( fc1(g_c) ) ) ) )                Theta[B, C, K]
            y[:, c, t] = sum_k Theta_c[k] * x1[:, c, t*stride + k - padding]   (zero padded)

The global branch is shared by all channels (the FC layers act on each channel's
length-T temporal profile), giving one K-tap temporal kernel per (sample, channel);
the adaptive convolution is depthwise over channels and shared over H x W.

Defaults (official code; the paper's alpha=2, beta=4, K=3 agree):
- kernel_size=3 (K): the official `kernel_size=3`, also the local branch's conv width.
- stride=1, padding=1: the official adaptive-conv stride/padding along T.
- alpha=2: fc1 maps T -> alpha*T (official `n_segment * 2`).
- beta=4: the local branch reduces C -> C/beta (official `in_channels // 4`).
- No biases anywhere (official `bias=False` on all four layers); BN after the first
  layer of each branch with PyTorch defaults.

Choices:
- The official module takes x[(N*T), C, H, W] as laid out inside a 2-D ResNet; this
  reference takes the catalog's 5-D x[B, C, T, H, W] directly (same arithmetic).
- Parameter names are the branch and layer (`local_conv1`, `local_bn`, `local_conv2`,
  `global_fc1`, `global_bn`, `global_fc2`), registered local branch first because its
  output s multiplies x before the global kernel is applied (the official code registers
  its `G` (global) Sequential before `L` (local)).
- The global BN normalises over the B*C channel profiles (BatchNorm1d(alpha*T) on a
  [B*C, alpha*T] batch), as in the official code.
- Initialisation: PyTorch defaults (the official code relies on them too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TemporalAdaptiveModule(nn.Module):
    def __init__(
        self,
        channels: int,
        frames: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        alpha: int = 2,
        beta: int = 4,
    ):
        super().__init__()
        hidden = max(1, channels // beta)
        self.channels = channels
        self.frames = frames
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        # local branch: location-sensitive importance map over T
        self.local_conv1 = nn.Conv1d(channels, hidden, kernel_size, padding=kernel_size // 2, bias=False)
        self.local_bn = nn.BatchNorm1d(hidden)
        self.local_conv2 = nn.Conv1d(hidden, channels, 1, bias=False)
        # global branch: location-invariant adaptive kernel, shared across channels
        self.global_fc1 = nn.Linear(frames, frames * alpha, bias=False)
        self.global_bn = nn.BatchNorm1d(frames * alpha)
        self.global_fc2 = nn.Linear(frames * alpha, kernel_size, bias=False)

    def local_importance(self, g: torch.Tensor) -> torch.Tensor:
        """s[B, C, T] from the pooled descriptor g[B, C, T]."""
        return torch.sigmoid(self.local_conv2(torch.relu(self.local_bn(self.local_conv1(g)))))

    def adaptive_kernel(self, g: torch.Tensor) -> torch.Tensor:
        """Theta[B, C, K] from g[B, C, T]; each kernel sums to one."""
        b, c, t = g.shape
        h = torch.relu(self.global_bn(self.global_fc1(g.reshape(b * c, t))))
        return torch.softmax(self.global_fc2(h), dim=-1).view(b, c, self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if t != self.frames:
            raise ValueError(f"expected {self.frames} frames, got {t}")
        g = x.mean(dim=(3, 4))
        x1 = x * self.local_importance(g)[..., None, None]
        theta = self.adaptive_kernel(g)
        # depthwise temporal conv with a per-(sample, channel) kernel, shared over H x W
        out = F.conv2d(
            x1.reshape(1, b * c, t, h * w),
            theta.reshape(b * c, 1, self.kernel_size, 1),
            stride=(self.stride, 1),
            padding=(self.padding, 0),
            groups=b * c,
        )
        return out.view(b, c, out.shape[2], h, w)


Reference = TemporalAdaptiveModule
