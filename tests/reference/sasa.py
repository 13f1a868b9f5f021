"""SASA: stand-alone local self-attention layer, hand-written reference.

Paper: Prajit Ramachandran, Niki Parmar, Ashish Vaswani, Irwan Bello, Anselm
Levskaya, Jonathon Shlens, "Stand-Alone Self-Attention in Vision Models",
NeurIPS 2019.
Official code: google-research/google-research/standalone_self_attention_in_vision_models
holds only a README ("work-in-progress"), so this follows the paper's equations.

For each pixel ij and its k x k neighbourhood N_k(ij) (the memory block):
  y_ij = sum_{ab in N_k(ij)} softmax_ab( q_ij^T k_ab + q_ij^T r_{a-i, b-j} ) v_ab
  q = W_Q x, k = W_K x, v = W_V x     (1x1 convolutions, no bias, C -> out_channels)
Multi-head: the out_channels are split into `heads` groups of out_channels/heads,
each group attending with its own slice of q, k, v and r (one 1x1 conv per
projection, sliced per head, equals separate per-head weights).
Relative embedding: r_{a-i, b-j} is the concatenation of a row-offset embedding
(rel_h, out_channels//2 dims) and a column-offset embedding (rel_w, the remaining
dims), learned per offset in [-(k//2), k//2].

Defaults (paper, Section 4 / Appendix): kernel_size (spatial extent) k = 7,
heads = 8, out_channels = channels.

Ambiguities and choices:
- No 1/sqrt(d) scaling of the logits (the paper's equation has none).
- Borders: the paper does not say how windows that leave the image are handled.
  padding_mode="zeros" (default) zero-pads x before the window is taken, so
  outside positions take part in the softmax with k = v = 0 (logit q^T r); this is
  what a convolution-style unfold gives. padding_mode="mask" excludes them.
- No bias in W_Q, W_K, W_V; relative embeddings initialised N(0, 1); convs use
  PyTorch's default init.
- Stride/downsampling (the paper uses 2x2 average pooling after the attention
  layer) and the attention stem with value embeddings are out of scope.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SASA(nn.Module):
    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        kernel_size: int = 7,
        heads: int = 8,
        padding_mode: str = "zeros",
    ):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        if out_channels % heads:
            raise ValueError("out_channels must be divisible by heads")
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd")
        if padding_mode not in ("zeros", "mask"):
            raise ValueError("padding_mode must be 'zeros' or 'mask'")
        self.out_channels, self.kernel_size, self.heads = out_channels, kernel_size, heads
        self.padding_mode = padding_mode
        self.query = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.key = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.rel_h = nn.Parameter(torch.randn(out_channels // 2, kernel_size))
        self.rel_w = nn.Parameter(torch.randn(out_channels - out_channels // 2, kernel_size))
        self.value = nn.Conv2d(channels, out_channels, 1, bias=False)

    def relative_embedding(self) -> torch.Tensor:
        """r[out_channels, k, k]: r[:, a, b] = concat(rel_h[:, a], rel_w[:, b])."""
        k = self.kernel_size
        rh = self.rel_h[:, :, None].expand(-1, k, k)
        rw = self.rel_w[:, None, :].expand(-1, k, k)
        return torch.cat([rh, rw], dim=0)

    def _unfold(self, t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = t.shape
        k = self.kernel_size
        return F.unfold(t, k, padding=k // 2).reshape(b, c, k * k, h * w)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights [B, heads, k*k, H*W] (sum to one over the window)."""
        b, _, h, w = x.shape
        k, o, g = self.kernel_size, self.out_channels, self.heads
        q = self.query(x).reshape(b, g, o // g, 1, h * w)
        keys = self._unfold(self.key(x)) + self.relative_embedding().reshape(1, o, k * k, 1)
        keys = keys.reshape(b, g, o // g, k * k, h * w)
        logits = (q * keys).sum(dim=2)  # [B, heads, kk, HW]
        if self.padding_mode == "mask":
            inside = self._unfold(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device))
            logits = logits.masked_fill(inside.reshape(1, 1, k * k, h * w) == 0, float("-inf"))
        return F.softmax(logits, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        k, o, g = self.kernel_size, self.out_channels, self.heads
        weights = self.attention(x)
        v = self._unfold(self.value(x)).reshape(b, g, o // g, k * k, h * w)
        out = (weights.unsqueeze(2) * v).sum(dim=3)  # [B, heads, d, HW]
        return out.reshape(b, o, h, w)


Reference = SASA
