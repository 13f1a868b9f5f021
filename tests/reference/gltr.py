"""Global-Local Temporal Representation (GLTR), hand-written eager reference.

Paper: Jianing Li, Jingdong Wang, Qi Tian, Wen Gao, Shiliang Zhang, "Global-Local
Temporal Representations for Video Person Re-Identification", ICCV 2019
(arXiv 1908.10049).
Official code: none found (no public repository from the authors); this reference is
written from the paper's description and the survey's summary, and the choices below
mark where the text leaves room.

Input: frame features x[B, C, T] (C = d, the per-frame feature size). Output: the video
descriptor [B, N * C'] (C' = branch_channels).

Dilated temporal pyramid (DTP), local short-term cues: N parallel 1-D convolutions over
time with kernel width w and dilation rates r_i = 2^(i-1), concatenated along features:

    F'_i = conv1d_{w, dilation r_i}(x)                         F'_i[B, C', T]  (same length)
    F'   = [F'_1 ; ... ; F'_N]                                  F'[B, N C', T]

Temporal self-attention (TSA), global long-term relations among all frames:

    Bk = conv_b(F'),  Cq = conv_c(F')                          [B, N C' / alpha, T], 1x1 convs
    M[i, j] = softmax_i( Bk[:, i] . Cq[:, j] )                  M[B, T, T], columns sum to 1
    F''  = W( F' M ) + F'                                       W: 1x1 conv, residual
    GLTR = mean_t F''[:, :, t]                                  [B, N C']

Defaults (paper):
- branches=3 (N=3) with dilation rates 1, 2, 4 (r_i = 2^(i-1)), the paper's pyramid.
- kernel_size=3 (temporal kernel width w).
- reduction=2 (alpha), the channel reduction of the attention embeddings.

Ambiguities and choices (no official code to settle them):
- Width of each DTP branch: branch_channels=None means C' = C, so F' has N*C channels
  and so does the output; set branch_channels=C // N for an output of about C channels.
- The DTP convolutions are plain (with bias, no BN or activation); TSA's 1x1 convs keep
  their bias and use PyTorch default initialisation. Sequences are zero-padded so every
  branch keeps length T.
- Orientation of the attention: output frame j gathers all frames i with weights
  softmax over i of b_i . c_j, i.e. F' M with column-stochastic M.
- The final aggregation over time is an average of F'' over T (the catalog's
  "aggregate over T").
"""

from __future__ import annotations

import torch
from torch import nn


class GLTR(nn.Module):
    def __init__(
        self,
        channels: int,
        branches: int = 3,
        kernel_size: int = 3,
        branch_channels: int | None = None,
        reduction: int = 2,
    ):
        super().__init__()
        bc = channels if branch_channels is None else branch_channels
        dim = branches * bc
        self.out_channels = dim
        self.dtp = nn.ModuleList(
            nn.Conv1d(channels, bc, kernel_size, dilation=2**i, padding=2**i * (kernel_size // 2))
            for i in range(branches)
        )
        embed = max(1, dim // reduction)
        self.conv_b = nn.Conv1d(dim, embed, 1)
        self.conv_c = nn.Conv1d(dim, embed, 1)
        self.W = nn.Conv1d(dim, dim, 1)

    def pyramid(self, x: torch.Tensor) -> torch.Tensor:
        """F'[B, N C', T]."""
        return torch.cat([conv(x) for conv in self.dtp], dim=1)

    def temporal_attention(self, f: torch.Tensor) -> torch.Tensor:
        """M[B, T, T]; M[:, i, j] is the weight of frame i in output frame j."""
        scores = torch.bmm(self.conv_b(f).transpose(1, 2), self.conv_c(f))
        return torch.softmax(scores, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.pyramid(x)
        refined = self.W(torch.bmm(f, self.temporal_attention(f))) + f
        return refined.mean(dim=2)


Reference = GLTR
