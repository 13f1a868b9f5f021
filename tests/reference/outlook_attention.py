"""Outlook attention (VOLO), eager PyTorch, written from the paper's equations.

Paper: Li Yuan, Qibin Hou, Zihang Jiang, Jiashi Feng, Shuicheng Yan, "VOLO: Vision Outlooker for Visual
Recognition", IEEE TPAMI 45(5), 2023 (arXiv:2106.13112), Sec. 3.1, Eqs. 2-5 and Algorithm 1.
Official code: https://github.com/sail-sg/volo (`models/volo.py`, `OutlookAttention`); timm 1.0.x ports
it as `timm.models.volo.OutlookAttention`, which the spec's tests also compare against directly.

For tokens X[B, H, W, C], kernel K, padding p, stride s, heads n of width d = C / n:
- V = X W_v (bias when qkv_bias); window (i, j) holds the K x K values V[i s - p + a, j s - p + b]
  (zeros outside the map), slot a * K + b.
- The weights of window (i, j) come from the token at its centre (Eq. 2): A = X' W_A + b_A reshaped
  to [n, K^2, K^2]; with s > 1, X' is the mean of X over the s x s cell (i, j) (its real positions
  only at the bottom and right edges: the official AvgPool2d(s, s, ceil_mode=True)); then
  A <- softmax(A * d ** -0.5) over the last axis.
- Y_window = A V_window per head (Eq. 3); every slot is written back at its position and the
  overlapping windows are summed (Eq. 4, the official F.fold), then the output projection (Eq. 5).

Defaults: K 3, p 1, s 2 (VOLO's outlookers), heads channels // 32, no v bias. Written with explicit
loops over cells, slots and kernel offsets (strided slices of a padded canvas), not unfold/fold; key
names as the official module (`v`, `attn`, `proj`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class OutlookAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        num_heads: int | None = None,
        kernel_size: int = 3,
        padding: int | None = None,
        stride: int = 2,
        qkv_bias: bool = False,
    ):
        super().__init__()
        self.heads = num_heads or max(1, channels // 32)
        self.k, self.s = kernel_size, stride
        self.p = kernel_size // 2 if padding is None else padding
        self.v = nn.Linear(channels, channels, bias=qkv_bias)
        self.attn = nn.Linear(channels, kernel_size**4 * self.heads)
        self.proj = nn.Linear(channels, channels)

    def pooled(self, x):
        """[B, h, w, C]: the mean of each s x s cell over its real positions."""
        s = self.s
        h, w = math.ceil(x.shape[1] / s), math.ceil(x.shape[2] / s)
        rows = [
            torch.stack([x[:, i * s : (i + 1) * s, j * s : (j + 1) * s].mean(dim=(1, 2)) for j in range(w)], 1)
            for i in range(h)
        ]
        return torch.stack(rows, 1)

    def forward(self, x):
        b, H, W, c = x.shape
        k, s, p, n = self.k, self.s, self.p, self.heads
        d = c // n
        xp = self.pooled(x) if s > 1 else x
        h, w = xp.shape[1:3]
        a = self.attn(xp).reshape(b, h, w, n, k * k, k * k)
        a = torch.softmax(a * d**-0.5, dim=-1)  # [B, h, w, n, out slot, in slot]
        self.last_weights = a
        v = F.pad(self.v(x), (0, 0, p, p, p, p))  # zeros outside the map
        rows, cols = s * (h - 1) + 1, s * (w - 1) + 1  # the extent of the window starts
        slots = [v[:, r : r + rows : s, q : q + cols : s] for r in range(k) for q in range(k)]
        windows = torch.stack(slots, dim=3).reshape(b, h, w, k * k, n, d)
        out = torch.einsum("bhwnkl,bhwlnd->bhwknd", a, windows).reshape(b, h, w, k * k, c)
        canvas = x.new_zeros(b, max(H + 2 * p, k - 1 + rows), max(W + 2 * p, k - 1 + cols), c)
        for r in range(k):
            for q in range(k):
                canvas[:, r : r + rows : s, q : q + cols : s] += out[:, :, :, r * k + q]
        return self.proj(canvas[:, p : p + H, p : p + W])
