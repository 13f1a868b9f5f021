"""DNL: disentangled non-local block, hand-written reference.

Paper: Minghao Yin, Zhuliang Yao, Yue Cao, Xiu Li, Zheng Zhang, Stephen Lin, Han Hu,
"Disentangled Non-Local Neural Networks", ECCV 2020.
Official code: yinmh17/DNL-Semantic-Segmentation (model/seg/ops/nonlocal_block.py,
_NonLocalNd_bn; the DNL models use configs/seg/*/NLbn_fcn_*_seg.conf:
downsample=False, whiten_type=["channel"], temp=0.05, with_gc=True, use_out=False,
out_bn=False).

Computation for x[B, C, *spatial], N positions, planes = channels // reduction:
  q = W_q x, k = W_k x  (C -> planes, with bias), v = W_v x (C -> C, no bias)
  whitened pairwise term   A_ij = softmax_j( (q_i - mu_q)^T (k_j - mu_k) / sqrt(planes) / T )
                           (mu = mean over the N positions, per channel)
  unary term               u_j  = softmax_j( W_m x_j )            (W_m: C -> 1, with bias)
  out_i = x_i + gamma * sum_j A_ij v_j + sum_j u_j v_j
gamma is a learned scalar initialised to 0 (so at initialisation only the unary
term is active); all convolutions are initialised N(0, 0.01) with zero bias.

Defaults (official DNL config): reduction=2 (NLModule builds NonLocal2d_bn(inter,
inter // 2)), temperature=0.05, whiten=True, unary=True, downsample=False.
Variants: whiten/unary on or off (whiten=False, unary=False with temperature=1 is
the plain embedded-Gaussian non-local of this code base, still gated by gamma),
downsample=True (max-pool keys and values: 2 in 1-D, 2x2 in 2-D, 1x2x2 in 3-D as in
the official code; the unary mask is then computed on the pooled input too).

Rank: the official block supports 1-D, 2-D and 3-D inputs; this reference accepts
x[B, C, *spatial] with 1-3 spatial dims and uses nn.Linear for the 1x1 convolutions
so parameter shapes are rank-independent ([out, in] weights, gamma of shape [1]).

Paper vs code: the paper's DNL formula puts both terms inside the same aggregation
and uses no gamma; the official code scales only the pairwise term by a
zero-initialised gamma and adds the unary (GC-style) term unscaled, without an
output 1x1 conv. mmsegmentation's DNLHead differs again (value C -> C/2, output
conv with norm, no gamma). Followed the official code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DNL(nn.Module):
    def __init__(
        self,
        channels: int,
        reduction: int = 2,
        temperature: float = 0.05,
        whiten: bool = True,
        unary: bool = True,
        downsample: bool = False,
    ):
        super().__init__()
        planes = channels // reduction
        self.planes = planes
        self.temperature = temperature
        self.whiten = whiten
        self.unary = unary
        self.downsample = downsample
        self.conv_query = nn.Linear(channels, planes)
        self.conv_key = nn.Linear(channels, planes)
        self.conv_value = nn.Linear(channels, channels, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))
        if unary:
            self.conv_mask = nn.Linear(channels, 1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if not self.downsample:
            return x
        if x.dim() == 3:
            return F.max_pool1d(x, 2, 2)
        if x.dim() == 4:
            return F.max_pool2d(x, 2, 2)
        return F.max_pool3d(x, (1, 2, 2), (1, 2, 2))

    def pairwise(self, x: torch.Tensor) -> torch.Tensor:
        """Whitened pairwise attention A[B, N, N'] (rows sum to one)."""
        b, c = x.shape[:2]
        xq = x.reshape(b, c, -1).transpose(1, 2)
        xk = self._pool(x).reshape(b, c, -1).transpose(1, 2)
        q = self.conv_query(xq)  # [B, N, P]
        k = self.conv_key(xk)  # [B, N', P]
        if self.whiten:
            q = q - q.mean(dim=1, keepdim=True)
            k = k - k.mean(dim=1, keepdim=True)
        logits = torch.bmm(q, k.transpose(1, 2)) / math.sqrt(self.planes) / self.temperature
        return F.softmax(logits, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (3, 4, 5):
            raise ValueError(f"DNL expects x[B, C, *spatial] with 1-3 spatial dims, got {tuple(x.shape)}")
        b, c = x.shape[:2]
        xk = self._pool(x).reshape(b, c, -1).transpose(1, 2)  # [B, N', C]
        v = self.conv_value(xk)  # [B, N', C]
        out = self.gamma * torch.bmm(self.pairwise(x), v)  # [B, N, C]
        if self.unary:
            u = F.softmax(self.conv_mask(xk).squeeze(-1), dim=-1)  # [B, N']
            out = out + torch.bmm(u.unsqueeze(1), v)  # broadcast over N
        return x + out.transpose(1, 2).reshape(x.shape)


Reference = DNL
