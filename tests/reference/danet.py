"""DANet: dual attention, a position and a channel self-attention in parallel.

Paper: Jun Fu, Jing Liu, Haijie Tian, Yong Li, Yongjun Bao, Zhiwei Fang,
Hanqing Lu, "Dual Attention Network for Scene Segmentation", CVPR 2019.
Official code: junfu1115/DANet (`encoding/nn/da_att.py` PAM_Module/CAM_Module,
`encoding/models/sseg/danet.py` DANetHead).

Shapes: x[B, C, H, W] -> [B, C, H, W] (or [B, C//4, H, W] with head=True).

Position attention (PAM), N = H*W:
  Q = query_conv(x), K = key_conv(x) (1x1, C -> C/8, with bias), V = value_conv(x) (C -> C)
  S = softmax_j(Q_i . K_j)    (no 1/sqrt(d) scaling)        E_pam = gamma_p * V S^T + x
Channel attention (CAM), on x itself (no projections):
  A = X X^T (C x C),  X = x reshaped [C, N]
  official code: attention = softmax(rowmax(A) - A);  paper: softmax(A)
  E_cam = gamma_c * attention X + x
Output: E_pam + E_cam (the fusion by element-wise sum).

Defaults and where they come from:
- reduction=8 for query/key: official PAM_Module (in_dim // 8).
- gamma_p = gamma_c = 0 at initialisation: official code (Parameter(torch.zeros(1)))
  and paper ("initialized as 0 and gradually learns to assign more weight"); so at
  initialisation the block returns 2*x (head=False).
- cam_energy="max_minus": official CAM_Module computes softmax(max(A) - A). Since
  the row maximum is constant along the softmax axis this equals softmax(-A),
  i.e. the opposite sign of the paper's Eq. (3) softmax(A). cam_energy="plain"
  gives the paper's equation.
- head=False: the attention block alone, both modules on the same x. head=True
  reproduces DANetHead up to feat_sum: conv5a/conv5c (3x3, C -> C/4, no bias,
  BN, ReLU) before PAM/CAM and conv51/conv52 (3x3, C/4 -> C/4, BN, ReLU) after,
  then the sum (the segmentation classifiers conv6/7/8 are not part of the block).

Variants: branches in {"both", "position", "channel"} (the paper's ablations);
cam_energy; head.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class PositionAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        inter = channels // reduction
        if inter < 1:
            raise ValueError(f"channels // reduction must be >= 1 ({channels} // {reduction})")
        self.query_conv = nn.Conv2d(channels, inter, 1)
        self.key_conv = nn.Conv2d(channels, inter, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """S[B, N, N], rows sum to 1: S[i, j] is the weight of position j for position i."""
        q = self.query_conv(x).flatten(2)  # [B, C', N]
        k = self.key_conv(x).flatten(2)
        return torch.softmax(q.transpose(1, 2) @ k, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.attention(x)
        v = self.value_conv(x).flatten(2)  # [B, C, N]
        out = (v @ s.transpose(1, 2)).reshape(x.shape)
        return self.gamma * out + x


class ChannelAttention(nn.Module):
    def __init__(self, cam_energy: str = "max_minus"):
        super().__init__()
        if cam_energy not in ("max_minus", "plain"):
            raise ValueError(f"cam_energy must be 'max_minus' or 'plain', got {cam_energy!r}")
        self.cam_energy = cam_energy
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, C], rows sum to 1."""
        f = x.flatten(2)
        energy = f @ f.transpose(1, 2)
        if self.cam_energy == "max_minus":
            energy = energy.amax(dim=-1, keepdim=True) - energy
        return torch.softmax(energy, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (self.attention(x) @ x.flatten(2)).reshape(x.shape)
        return self.gamma * out + x


class DANet(nn.Module):
    def __init__(
        self,
        channels: int,
        reduction: int = 8,
        branches: str = "both",
        cam_energy: str = "max_minus",
        head: bool = False,
    ):
        super().__init__()
        if branches not in ("both", "position", "channel"):
            raise ValueError(f"branches must be 'both', 'position' or 'channel', got {branches!r}")
        self.branches = branches
        self.head = head
        inner = channels // 4 if head else channels
        if branches in ("both", "position"):
            if head:
                self.conv5a = _conv_bn_relu(channels, inner)
            self.pam = PositionAttention(inner, reduction)
            if head:
                self.conv51 = _conv_bn_relu(inner, inner)
        if branches in ("both", "channel"):
            if head:
                self.conv5c = _conv_bn_relu(channels, inner)
            self.cam = ChannelAttention(cam_energy)
            if head:
                self.conv52 = _conv_bn_relu(inner, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = 0
        if self.branches in ("both", "position"):
            p = self.pam(self.conv5a(x) if self.head else x)
            out = out + (self.conv51(p) if self.head else p)
        if self.branches in ("both", "channel"):
            c = self.cam(self.conv5c(x) if self.head else x)
            out = out + (self.conv52(c) if self.head else c)
        return out


Reference = DANet
