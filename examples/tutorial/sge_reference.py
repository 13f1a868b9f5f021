"""Spatial Group-wise Enhance, eager PyTorch, from the paper's equations, one group at a time."""

import torch
from torch import nn


class SGE(nn.Module):
    def __init__(self, channels: int, groups: int = 64, eps: float = 1e-5):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))  # gamma, one per group
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))  # beta, one per group

    def forward(self, x):
        out = []
        for i, xg in enumerate(x.chunk(self.groups, dim=1)):  # [B, C/G, H, W]
            g = xg.mean(dim=(2, 3), keepdim=True)  # g: the group's mean feature
            c = (g * xg).sum(dim=1).flatten(1)  # c_i = g . x_i, [B, H*W]
            # standardise over positions; the official code's torch.std is the unbiased one
            c = (c - c.mean(dim=1, keepdim=True)) / (c.std(dim=1, keepdim=True) + self.eps)
            a = self.weight[0, i, 0, 0] * c + self.bias[0, i, 0, 0]  # a_i = gamma * c_i + beta
            out.append(xg * torch.sigmoid(a).view(x.shape[0], 1, *x.shape[2:]))
        return torch.cat(out, dim=1)
