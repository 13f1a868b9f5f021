"""Context Encoding Module (EncNet), hand-written eager reference.

Paper: Hang Zhang, Kristin Dana, Jianping Shi, Zhongyue Zhang, Xiaogang Wang, Ambrish Tyagi,
Amit Agrawal, "Context Encoding for Semantic Segmentation", CVPR 2018.
Official code: https://github.com/zhanghang1989/PyTorch-Encoding
(`EncModule` in encoding/models/sseg/encnet.py, `Encoding` in encoding/nn/encoding.py).

    f     = relu(BN(conv1x1(x)))                         C -> C, no bias
    a_ik  = softmax_k(s_k · ||f_i - d_k||²)              soft assignment of position i to codeword k
    e_k   = Σ_i a_ik (f_i - d_k)                          residual encoding, E[B, K, C]
    e     = mean_k relu(BN_K(E))                          aggregation over codewords, e[B, C]
    γ     = sigmoid(fc(e))                                channel scaling factors
    y     = x · γ                 (residual=True: relu(x + x · γ), the official output)
    logits = selayer(e)                                  SE-loss logits [B, num_classes]

forward returns (y, se_logits).

Defaults:
- ncodes=32 (K): official EncModule default and the paper's setting.
- num_classes=21: the class count of the official get_encnet default dataset (pascal_voc);
  the paper's main benchmarks use 59 (PASCAL-Context) and 150 (ADE20K).
- Initialisation (official `Encoding.reset_params`): codewords ~ U(-1/sqrt(K·C), 1/sqrt(K·C)),
  smoothing factors s ~ U(-1, 0). Other layers: PyTorch defaults.
- fc (C -> C) and selayer (C -> num_classes) are Linear layers with bias (official).
- BN_K is a BatchNorm1d over the K codewords of E[B, K, C] (official `norm_layer(ncodes)`).

Paper vs code:
- Sign of the smoothing factor: the paper writes exp(-s_k ||r_ik||²); the code multiplies by
  its learnt `scale` directly and initialises it negative, i.e. scale = -s. The reference
  stores the code's `scale` (negative at initialisation).
- Aggregation: the paper sums the K encoded vectors (e = Σ_k φ(e_k), φ = BN + ReLU); the
  code averages them (Mean(dim=1)). The reference follows the code (mean).
- Output: the paper scales the features, Y = X ⊗ γ; the official EncModule returns
  relu(x + x · γ). The reference defaults to the paper's form (the catalog's f = x·s)
  and exposes the official output as residual=True.
Only 2-D feature maps are supported (conv2d / BatchNorm2d as in the code).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ContextEncoding(nn.Module):
    def __init__(self, channels: int, num_classes: int = 21, ncodes: int = 32, residual: bool = False):
        super().__init__()
        self.channels = channels
        self.num_classes = num_classes
        self.ncodes = ncodes
        self.residual = residual
        self.conv = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.codewords = nn.Parameter(torch.empty(ncodes, channels))
        self.scale = nn.Parameter(torch.empty(ncodes))
        self.code_bn = nn.BatchNorm1d(ncodes)
        self.fc = nn.Linear(channels, channels)
        self.selayer = nn.Linear(channels, num_classes)
        bound = 1.0 / math.sqrt(ncodes * channels)
        nn.init.uniform_(self.codewords, -bound, bound)
        nn.init.uniform_(self.scale, -1.0, 0.0)

    def assignment(self, features: torch.Tensor) -> torch.Tensor:
        """a[B, N, K] from features[B, N, C]."""
        residuals = features.unsqueeze(2) - self.codewords  # [B, N, K, C]
        return torch.softmax(self.scale * residuals.pow(2).sum(dim=3), dim=2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The residual encoding E[B, K, C] of the embedded features."""
        f = torch.relu(self.bn(self.conv(x))).flatten(2).transpose(1, 2)  # [B, N, C]
        a = self.assignment(f)
        # Σ_i a_ik (f_i - d_k) = Σ_i a_ik f_i - (Σ_i a_ik) d_k
        return a.transpose(1, 2) @ f - a.sum(dim=1).unsqueeze(2) * self.codewords

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The encoded context vector e[B, C]."""
        return torch.relu(self.code_bn(self.encode(x))).mean(dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.context(x)
        gamma = torch.sigmoid(self.fc(e))[:, :, None, None]
        y = torch.relu(x + x * gamma) if self.residual else x * gamma
        return y, self.selayer(e)


Reference = ContextEncoding
