"""Neighborhood attention (NAT), hand-written reference.

Paper: Ali Hassani, Steven Walton, Jiachen Li, Shen Li, Humphrey Shi, "Neighborhood
Attention Transformer", CVPR 2023.
Official code: SHI-Labs/Neighborhood-Attention-Transformer (nat.py, the NAT layers)
with the NeighborhoodAttention2D module and kernels of SHI-Labs/NATTEN.

For a query at (i, j), neighbourhood attention is self-attention restricted to its
k x k nearest neighbours rho(i, j):
  NA(x_ij) = softmax_{(p, q) in rho(i, j)}(Q_ij K_pq^T / sqrt(d) + B(i, j, p, q)) V_pq
Per axis the neighbourhood is the window of k positions centred on the query where
that fits, and shifted to stay inside the map at the borders (NATTEN's
get_window_start: max(i - k//2, 0), moved back to L - k when i + k//2 >= L), so
every query has exactly k x k keys and nothing is zero-padded.  The relative
position bias table rpb[heads, 2k - 1, 2k - 1] is read from NATTEN's
get_pb_start(i) + slot, which is k - 1 + (key - query) in each axis.

Official module choices reproduced: input channels-last [B, H, W, C]; one qkv
linear (qkv_bias, default true) split q, k, v then heads; q * qk_scale (default
head_dim ** -0.5) before the product; rpb added when rel_pos_bias (default true);
softmax; attention times values; output projection with bias. A map smaller than
the kernel is zero-padded at the bottom/right up to k before qkv and cropped after.
Defaults: kernel_size 7 (NAT-Mini...Base), head width 32 (NAT-Tiny: 2, 4, 8, 16
heads at 64, 128, 256, 512 channels). Dilation (DiNAT) and dropout: out of scope.
Initialisation: rpb truncated normal std 0.02 as the official module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def window_start(index: torch.Tensor, length: int, kernel_size: int) -> torch.Tensor:
    """NATTEN's get_window_start at dilation 1: the first key position of each query's window."""
    n = kernel_size // 2
    return (index - n).clamp(min=0) + (index + n >= length).long() * (length - index - n - 1)


def bias_start(index: torch.Tensor, length: int, kernel_size: int) -> torch.Tensor:
    """NATTEN's get_pb_start at dilation 1: the rpb row of each query's first key."""
    n = kernel_size // 2
    return n + (index < n).long() * (n - index) + (index + n >= length).long() * (length - index - 1 - n)


class NeighborhoodAttention2D(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int | None = None,
        kernel_size: int = 7,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        rel_pos_bias: bool = True,
    ):
        super().__init__()
        num_heads = max(1, dim // 32) if num_heads is None else num_heads
        if dim % num_heads or kernel_size % 2 != 1:
            raise ValueError("num_heads must divide dim and kernel_size must be odd")
        self.num_heads, self.head_dim, self.kernel_size = num_heads, dim // num_heads, kernel_size
        self.scale = qk_scale or self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        if rel_pos_bias:
            self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))
            nn.init.trunc_normal_(self.rpb, std=0.02, a=-2.0, b=2.0)
        else:
            self.register_parameter("rpb", None)
        self.proj = nn.Linear(dim, dim)

    def neighbourhoods(self, height: int, width: int):
        """Key rows [H, k], key columns [W, k] and their rpb rows / columns, as long tensors."""
        k = self.kernel_size
        slots = torch.arange(k)
        ih, iw = torch.arange(height), torch.arange(width)
        keys_h = window_start(ih, height, k)[:, None] + slots
        keys_w = window_start(iw, width, k)[:, None] + slots
        bias_h = bias_start(ih, height, k)[:, None] + slots
        bias_w = bias_start(iw, width, k)[:, None] + slots
        return keys_h, keys_w, bias_h, bias_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h0, w0, c = x.shape
        k = self.kernel_size
        pad_b, pad_r = max(0, k - h0), max(0, k - w0)
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        _, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h, w, 3, self.num_heads, self.head_dim).permute(3, 0, 4, 1, 2, 5)
        q, key, value = qkv[0] * self.scale, qkv[1], qkv[2]  # [B, heads, H, W, d]
        keys_h, keys_w, bias_h, bias_w = self.neighbourhoods(h, w)
        rows, cols = keys_h[:, None, :, None], keys_w[None, :, None, :]  # -> [H, W, k, k]
        kn = key[:, :, rows, cols]  # [B, heads, H, W, k, k, d]
        vn = value[:, :, rows, cols]
        logits = (q[:, :, :, :, None, None, :] * kn).sum(-1)
        if self.rpb is not None:
            logits = logits + self.rpb[:, bias_h[:, None, :, None], bias_w[None, :, None, :]]
        weights = F.softmax(logits.reshape(b, self.num_heads, h, w, k * k), dim=-1)
        self.last_weights = weights
        out = (weights.reshape(b, self.num_heads, h, w, k, k, 1) * vn).sum(dim=(4, 5))
        out = out.permute(0, 2, 3, 1, 4).reshape(b, h, w, c)[:, :h0, :w0]
        return self.proj(out)


Reference = NeighborhoodAttention2D
