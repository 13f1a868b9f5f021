"""LR-Net: local relation layer, hand-written reference.

Paper: Han Hu, Zheng Zhang, Zhenda Xie, Stephen Lin, "Local Relation Networks for
Image Recognition", ICCV 2019.
Official code: no PyTorch release of the original layer; the authors' later CUDA
operator lives in microsoft/Swin-Transformer (LR-Net branch,
ops/local_relation/src/local_relation_cuda_kernel.cu), used here only for the
facts noted below.

For output position p' and the k x k neighbourhood Omega(p'), with the C channels
split into G = C / m groups (m channels share one set of aggregation weights):
  q = W_q x, k = W_k x             (1x1 convolutions C -> G: one key and one query
                                    channel per group)
  appearance composability  Phi(q_p', k_p) = -(q_p' - k_p)^2   (per group; default)
  geometry prior            g(p - p') = W_2 relu(W_1 (p - p'))  (two 1x1 layers on
                                    the 2-d relative position, 2 -> hidden -> G)
  omega(p', p) = softmax_{p in Omega(p')}( Phi(q_p', k_p) + g(p - p') )
  y(c, p') = sum_p omega_{group(c)}(p', p) x(c, p)      (values are x itself)
  out = W_out y                    (final 1x1 convolution C -> out_channels)

Defaults (paper): kernel_size k = 7, m = 8 channels per aggregation group,
composability "squared_diff" (the paper compares squared difference, absolute
difference and multiplication; squared difference is used as the default here).

Ambiguities and choices:
- Geometry-prior hidden width: not stated; geometry_hidden defaults to G // 2
  (at least 1). Relative positions are the raw integer offsets (dh, dw).
- Positions outside the image are excluded from the softmax (the official CUDA
  operator gives them a logit of -100, i.e. effectively excluded).
- Group membership: channel c belongs to group c // m (contiguous blocks).
- No bias in the key/query/output 1x1 convolutions (they are followed by BN in the
  LR-Net bottleneck).
- The final 1x1 projection is this reference's reading of the paper's layer diagram
  (not confirmed by released code); out_proj=False drops it and returns y (C ch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LRNet(nn.Module):
    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        kernel_size: int = 7,
        m: int = 8,
        composability: str = "squared_diff",
        geometry_hidden: int | None = None,
        out_proj: bool = True,
    ):
        super().__init__()
        if channels % m:
            raise ValueError("channels must be divisible by m")
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd")
        if composability not in ("squared_diff", "abs_diff", "product"):
            raise ValueError("composability must be squared_diff, abs_diff or product")
        out_channels = channels if out_channels is None else out_channels
        self.channels, self.kernel_size, self.m = channels, kernel_size, m
        self.groups = g = channels // m
        self.composability = composability
        hidden = max(1, g // 2) if geometry_hidden is None else geometry_hidden
        self.query = nn.Conv2d(channels, g, 1, bias=False)
        self.key = nn.Conv2d(channels, g, 1, bias=False)
        self.geometry = nn.Sequential(nn.Conv2d(2, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, g, 1))
        self.proj = nn.Conv2d(channels, out_channels, 1, bias=False) if out_proj else None
        r = torch.arange(kernel_size, dtype=torch.get_default_dtype()) - kernel_size // 2
        offsets = torch.stack(torch.meshgrid(r, r, indexing="ij"))  # [2, k, k]: (dh, dw)
        self.register_buffer("offsets", offsets.unsqueeze(0), persistent=False)

    def _unfold(self, t: torch.Tensor) -> torch.Tensor:
        b, c, h, w = t.shape
        k = self.kernel_size
        return F.unfold(t, k, padding=k // 2).reshape(b, c, k * k, h * w)

    def geometry_prior(self) -> torch.Tensor:
        """g[G, k*k]: the learned prior for every relative offset of the window."""
        return self.geometry(self.offsets.to(self.query.weight.dtype)).reshape(self.groups, -1)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Aggregation weights [B, G, k*k, H*W] (sum to one over the window)."""
        b, _, h, w = x.shape
        k = self.kernel_size
        q = self.query(x).reshape(b, self.groups, 1, h * w)
        keys = self._unfold(self.key(x))  # [B, G, kk, HW]
        if self.composability == "squared_diff":
            app = -((q - keys) ** 2)
        elif self.composability == "abs_diff":
            app = -(q - keys).abs()
        else:
            app = q * keys
        logits = app + self.geometry_prior().reshape(1, self.groups, k * k, 1)
        inside = self._unfold(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device))
        logits = logits.masked_fill(inside == 0, float("-inf"))
        return F.softmax(logits, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k = self.kernel_size
        weights = self.attention(x)  # [B, G, kk, HW]
        xs = self._unfold(x).reshape(b, self.groups, self.m, k * k, h * w)
        y = (weights.unsqueeze(2) * xs).sum(dim=3).reshape(b, c, h, w)
        return self.proj(y) if self.proj is not None else y


Reference = LRNet
