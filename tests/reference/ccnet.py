"""Recurrent criss-cross attention (RCCA), hand-written eager reference.

Paper: Zilong Huang, Xinggang Wang, Lichao Huang, Chang Huang, Yunchao Wei, Wenyu Liu,
"CCNet: Criss-Cross Attention for Semantic Segmentation", ICCV 2019 (TPAMI 2020 extension).
Official code: https://github.com/speedinghzl/CCNet (`cc_attention/functions.py`,
criss-cross attention module; `networks/ccnet.py`, RCCAModule).

One criss-cross attention (CCA) step on H[B, C, H, W]:

    Q = query(H), K = key(H)     1x1 convs C -> C/8, with bias
    V = value(H)                 1x1 conv  C -> C,   with bias
    for position u: Omega_u = its row and its column, H + W - 1 positions (u counted once)
    A_u = softmax over Omega_u of Q_u . K_i
    H'_u = gamma * sum_{i in Omega_u} A_{u,i} V_i + H_u

RCCA applies the same CCA module R times (weights shared), so every position can reach
every other after R = 2 steps.

Defaults:
- recurrence R = 2: the paper's choice (R = 2 balances accuracy and cost); the official
  training scripts pass --recurrence 2 (the Python default argument is 1).
- reduction = 8 (query/key width C // 8), official code.
- gamma: a learnable scalar initialised to 0 (official code), so the block starts as the
  identity. The paper's equation has no gamma (H' = sum A V + H); set learn_gamma=False
  for the paper's form (gamma fixed to 1, no parameter).

Scope: the catalog's block is the recurrent criss-cross attention itself. The official
RCCAModule wraps it in a 3x3 conv + BN before and after and a concat bottleneck for the
segmentation head; those layers are not part of this reference.
"""

from __future__ import annotations

import torch
from torch import nn


class CrissCrossAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        recurrence: int = 2,
        reduction: int = 8,
        learn_gamma: bool = True,
    ):
        super().__init__()
        inner = max(1, channels // reduction)
        self.channels = channels
        self.recurrence = recurrence
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        if learn_gamma:
            self.gamma = nn.Parameter(torch.zeros(1))
        else:
            self.register_buffer("gamma", torch.ones(1))

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Criss-cross weights of one step: (A_col[B, H, W, H], A_row[B, H, W, W]).

        For position (h, w): A_col[b, h, w, k] weighs (k, w) in its column, A_row[b, h, w, k]
        weighs (h, k) in its row; the self position is kept in the row part only, and
        the H + W weights of a position (H + W - 1 of them non-zero) sum to one.
        """
        b, _, h, w = x.shape
        q, k = self.query(x), self.key(x)
        e_col = torch.einsum("bchw,bckw->bhwk", q, k)  # same column, other row k
        e_row = torch.einsum("bchw,bchk->bhwk", q, k)  # same row, other column k
        self_mask = torch.eye(h, dtype=torch.bool, device=x.device).view(1, h, 1, h)
        e_col = e_col.masked_fill(self_mask, float("-inf"))
        a = torch.cat([e_col, e_row], dim=-1).softmax(dim=-1)
        return a[..., :h], a[..., h:]

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One criss-cross attention (CCA) pass."""
        a_col, a_row = self.attention(x)
        v = self.value(x)
        out = torch.einsum("bhwk,bckw->bchw", a_col, v) + torch.einsum("bhwk,bchk->bchw", a_row, v)
        return self.gamma * out + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"ccnet: expected x[B, C, H, W], got {tuple(x.shape)}")
        for _ in range(self.recurrence):
            x = self.step(x)
        return x


Reference = CrissCrossAttention
