"""Gated Channel Transformation (GCT), hand-written eager reference.

Paper: Zongxin Yang, Linchao Zhu, Yu Wu, Yi Yang, "Gated Channel Transformation for
Visual Recognition", CVPR 2020.
Official code: https://github.com/z-x-yang/GCT (PyTorch/GCT.py).

l2 mode (default):
    s_c   = α_c · sqrt(Σ_p x_cp² + ε)                     global context embedding
    ŝ_c   = γ_c · s_c / sqrt(mean_c' s_c'² + ε)            channel normalisation
    y     = x · (1 + tanh(ŝ + β))                          gating adaptation
l1 mode (the official code's alternative embedding; after_relu skips the |.|):
    s_c   = α_c · Σ_p |x_cp|   (x itself if after_relu)
    ŝ_c   = γ_c · s_c / (mean_c' |s_c'| + ε)

Defaults (official code): eps=1e-5, mode='l2', after_relu=False; α initialised to 1,
γ and β to 0, so the block is exactly the identity at initialisation (the paper's
"identity initialisation" that lets GCT be inserted into pretrained networks).

Paper vs code: the paper normalises with sqrt(C) · s_c / sqrt(Σ_c s_c² + ε); the code
divides by sqrt(mean_c s_c² + ε), which equals sqrt(C)·s_c / sqrt(Σ s² + C·ε): the same up
to where ε sits. The reference follows the code.

Choices: α, γ, β are stored with shape [C] (official: [1, C, 1, 1]) so that the block
accepts x[B, C, *spatial] with 1, 2 or 3 spatial dimensions; they are broadcast in
forward. Parameter order α, γ, β as in the official module.
"""

from __future__ import annotations

import torch
from torch import nn


class GCT(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-5, mode: str = "l2", after_relu: bool = False):
        super().__init__()
        if mode not in ("l2", "l1"):
            raise ValueError(f"GCT mode must be 'l2' or 'l1', got {mode!r}")
        self.channels = channels
        self.eps = eps
        self.mode = mode
        self.after_relu = after_relu
        self.alpha = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """1 + tanh(ŝ + β), shape [B, C]."""
        flat = x.flatten(2)
        if self.mode == "l2":
            embedding = (flat.pow(2).sum(dim=2) + self.eps).sqrt() * self.alpha
            norm = self.gamma / (embedding.pow(2).mean(dim=1, keepdim=True) + self.eps).sqrt()
        else:
            magnitude = flat if self.after_relu else flat.abs()
            embedding = magnitude.sum(dim=2) * self.alpha
            norm = self.gamma / (embedding.abs().mean(dim=1, keepdim=True) + self.eps)
        return 1.0 + torch.tanh(embedding * norm + self.beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(x)
        return x * g.view(*g.shape, *([1] * (x.dim() - 2)))


Reference = GCT
