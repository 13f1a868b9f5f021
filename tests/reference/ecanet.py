"""Efficient Channel Attention (ECA), hand-written eager reference.

Paper: Qilong Wang, Banggu Wu, Pengfei Zhu, Peihua Li, Wangmeng Zuo, Qinghua Hu,
"ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", CVPR 2020.
Official code: https://github.com/BangguWu/ECANet (models/eca_module.py, models/eca_ns.py).

    y_c = GAP(x)_c
    s_c = sigmoid(Σ_j w_j · y_{c + j - (k-1)/2})      1-D conv across channels, zero padded,
                                                      one kernel shared by all channels, no bias
    out = x · s

Kernel size: k_size=None (default) uses the paper's adaptive rule
    k = |log2(C)/γ + b/γ|_odd  with γ=2, b=1  (t = int(|(log2 C + b)/γ|), k = t if odd else t+1),
giving k = 3 for C = 64, 5 for C = 256..1024 and 7 for C = 2048. An integer k_size fixes k.

Paper vs code: the official `eca_layer` defaults to k_size=3 and its ResNets take k per stage
from the command line; the released ECA-ResNet-50 weights use k = 3, 5, 5, 7 for its four
stages (C = 256, 512, 1024, 2048) while the adaptive rule gives 5, 5, 5, 7. The reference
defaults to the paper's adaptive rule (the catalog's "k adaptive from C"); pass k_size to
reproduce a given checkpoint.

Variant: shared=False is the paper's ECA-NS ablation (official eca_ns.py): every channel has
its own k weights (a grouped conv over the k-neighbourhood windows), parameter shape [C, 1, k].

Choices: the block accepts x[B, C, *spatial] with 1, 2 or 3 spatial dimensions (the pooled
vector does not depend on the rank). Initialisation: PyTorch's Conv1d default.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def adaptive_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    def __init__(self, channels: int, k_size: int | None = None, gamma: int = 2, b: int = 1, shared: bool = True):
        super().__init__()
        k = adaptive_kernel_size(channels, gamma, b) if k_size is None else k_size
        if k % 2 != 1:
            raise ValueError(f"ECA kernel size must be odd, got {k}")
        self.channels = channels
        self.k_size = k
        self.shared = shared
        if shared:
            self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        else:
            self.conv = nn.Conv1d(channels, channels, kernel_size=k, groups=channels, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=tuple(range(2, x.dim())))  # [B, C]
        if self.shared:
            z = self.conv(y.unsqueeze(1)).squeeze(1)
        else:
            pad = (self.k_size - 1) // 2
            windows = F.pad(y, (pad, pad)).unfold(1, self.k_size, 1)  # [B, C, k]
            z = self.conv(windows).squeeze(2)
        return torch.sigmoid(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(x)
        return x * s.view(*s.shape, *([1] * (x.dim() - 2)))


Reference = ECA
