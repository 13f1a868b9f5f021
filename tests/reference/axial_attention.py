"""Position-sensitive axial attention (Axial-DeepLab), hand-written reference.

Paper: Huiyu Wang, Yukun Zhu, Bradley Green, Hartwig Adam, Alan Yuille, Liang-Chieh
Chen, "Axial-DeepLab: Stand-Alone Axial-Attention for Panoptic Segmentation",
ECCV 2020.
Official code: csrhddlam/axial-deeplab (lib/models/axialnet.py, AxialAttention and
AxialBlock).

Position-sensitive self-attention along one axis, for output position o over the
positions p of the span (eq. 4 of the paper):
  y_o = sum_p softmax_p(q_o^T k_p + q_o^T r^q_{p-o} + k_p^T r^k_{p-o}) (v_p + r^v_{p-o})
An axial-attention layer applies it along the height (every column on its own),
then along the width (every row), each with its own weights.

Official choices reproduced:
- q, k, v come from one bias-free 1x1 projection to 2 * out_planes channels,
  batch-normalised (bn_qkv); per head (group) the 2 * group_planes channels are
  q : k : v = group_planes/2 : group_planes/2 : group_planes.
- One relative table [2 * group_planes, 2 * span - 1] per layer, shared by the
  heads, split like q, k, v; the entry for (query o, key p) is column o - p + span - 1
  (official flatten_index); the key term reads k_p against the entry of (p, o).
- The three logit terms are stacked and batch-normalised per (term, head) channel
  (bn_similarity), then summed; softmax over the keys, no 1/sqrt(d) scaling.
- The two output terms (sum of a v and sum of a r^v) are stacked with the term index
  innermost (channel 2 * c + term), batch-normalised (bn_output) and summed.
- The span is the whole axis (kernel_size equals the feature size); stride > 1
  average-pools after the width block.

Defaults: groups (heads) 8, kernel_size 56 (Axial-ResNet's first stage).
Out of scope: the local m x m span of Axial-DeepLab and the bottleneck around the
layer. Initialisation: the official qkv N(0, 1/in_planes) and relative
N(0, 1/group_planes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AxialAttention1d(nn.Module):
    """Attention along the height (width=False) or the width of [N, C, H, W]."""

    def __init__(self, in_planes: int, out_planes: int, groups: int = 8, span: int = 56, width: bool = False):
        super().__init__()
        if out_planes % groups or (out_planes // groups) % 2:
            raise ValueError("out_planes / groups must be an even integer")
        self.groups, self.out_planes, self.span, self.width = groups, out_planes, span, width
        self.gp = out_planes // groups
        self.qkv_transform = nn.Conv1d(in_planes, 2 * out_planes, 1, bias=False)
        self.bn_qkv = nn.BatchNorm1d(2 * out_planes)
        self.bn_similarity = nn.BatchNorm2d(3 * groups)
        self.bn_output = nn.BatchNorm1d(2 * out_planes)
        self.relative = nn.Parameter(torch.randn(2 * self.gp, 2 * span - 1) * math.sqrt(1.0 / self.gp))
        nn.init.normal_(self.qkv_transform.weight, 0.0, math.sqrt(1.0 / in_planes))

    def embeddings(self):
        """r^q, r^k, r^v as [c, o, p] tables: entry (o, p) is relative column o - p + span - 1."""
        s = self.span
        o = torch.arange(s).view(s, 1)
        p = torch.arange(s).view(1, s)
        table = self.relative[:, o - p + s - 1]  # [2 gp, s, s]
        return torch.split(table, [self.gp // 2, self.gp // 2, self.gp], dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # lines: [N * other, C, L] with L the attended axis
        lines = x.permute(0, 2, 1, 3) if self.width else x.permute(0, 3, 1, 2)
        n, m, c, length = lines.shape
        if length != self.span:
            raise ValueError(f"the attended axis must have the span {self.span}, got {length}")
        lines = lines.reshape(n * m, c, length)
        qkv = self.bn_qkv(self.qkv_transform(lines)).reshape(n * m, self.groups, 2 * self.gp, length)
        q, k, v = torch.split(qkv, [self.gp // 2, self.gp // 2, self.gp], dim=2)
        rq, rk, rv = self.embeddings()
        qk = torch.einsum("ngci,ngcj->ngij", q, k)
        qr = torch.einsum("ngci,cij->ngij", q, rq)
        kr = torch.einsum("ngcj,cji->ngij", k, rk)
        terms = self.bn_similarity(torch.cat([qk, qr, kr], dim=1))
        logits = terms.reshape(n * m, 3, self.groups, length, length).sum(dim=1)
        weights = F.softmax(logits, dim=3)
        self.last_weights = weights
        sv = torch.einsum("ngij,ngcj->ngci", weights, v)
        sve = torch.einsum("ngij,cij->ngci", weights, rv)
        both = torch.stack([sv, sve], dim=-1)  # term index innermost
        both = both.permute(0, 1, 2, 4, 3).reshape(n * m, 2 * self.out_planes, length)
        out = self.bn_output(both).reshape(n, m, self.out_planes, 2, length).sum(dim=3)
        return out.permute(0, 2, 1, 3) if self.width else out.permute(0, 2, 3, 1)


class AxialAttention(nn.Module):
    """Height attention, then width attention, then optional average pooling."""

    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        heads: int = 8,
        span_h: int = 56,
        span_w: int | None = None,
        stride: int = 1,
    ):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        span_w = span_h if span_w is None else span_w
        self.hight_block = AxialAttention1d(channels, out_channels, heads, span_h, width=False)
        self.width_block = AxialAttention1d(out_channels, out_channels, heads, span_w, width=True)
        self.pooling = nn.AvgPool2d(stride, stride) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooling(self.width_block(self.hight_block(x)))


Reference = AxialAttention
