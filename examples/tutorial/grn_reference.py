"""Global Response Normalization, eager PyTorch, from the ConvNeXt V2 paper's equations (channels first)."""

import torch
from torch import nn


class GRN(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x):
        gx = torch.linalg.vector_norm(x, ord=2, dim=(2, 3), keepdim=True)  # G(X)_i = ||X_i||
        nx = gx / (gx.mean(dim=1, keepdim=True) + self.eps)  # N(G(X)_i)
        return self.gamma * (x * nx) + self.beta + x  # gamma * X_i * N + beta + X_i
