"""Squeeze-and-Excitation block, hand-written eager reference.

Paper: Jie Hu, Li Shen, Gang Sun, "Squeeze-and-Excitation Networks", CVPR 2018
(extended version with Samuel Albanie and Enhua Wu, TPAMI 2019).
Official code: https://github.com/hujie-frank/SENet (Caffe prototxts).

    s = sigmoid(W2 · relu(W1 · GAP(x) + b1) + b2)        y = x · s   (per channel)

Defaults:
- reduction=16: the paper's default ratio r (chosen in its reduction-ratio ablation) and
  the ratio of the SE-ResNet/SE-ResNeXt prototxts of the official repository.
- bias=True: the official prototxts use Convolution/InnerProduct layers with their
  default bias term for both excitation layers.

Choices:
- The two excitation layers are nn.Linear (`fc1`, `fc2`) acting on the pooled vector
  rather than 1x1 Conv2d as in the Caffe code; the function is the same and the
  parameter shapes, [C/r, C] and [C, C/r], no longer depend on the spatial rank, so the
  block accepts x[B, C, *spatial] with 1, 2 or 3 spatial dimensions.
- The hidden width is max(1, channels // reduction); the paper assumes C divisible by r,
  the floor at 1 only matters for toy channel counts.
- Initialisation: PyTorch's nn.Linear default (the Caffe prototxts set their own fillers);
  the block has no initialisation-dependent identity.
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, bias: bool = True):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.channels = channels
        self.reduction = reduction
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The excitation vector s[B, C]."""
        squeezed = x.mean(dim=tuple(range(2, x.dim())))
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(squeezed))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(x)
        return x * s.view(*s.shape, *([1] * (x.dim() - 2)))


Reference = SqueezeExcitation
