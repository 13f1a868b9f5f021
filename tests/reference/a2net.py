"""Double attention block (A^2-Net), hand-written eager reference.

Paper: Yunpeng Chen, Yannis Kalantidis, Jianshu Li, Shuicheng Yan, Jiashi Feng,
"A^2-Nets: Double Attention Networks", NeurIPS 2018.
Official code: none released. Reimplementations exist (e.g. the "DoubleAttention" module
in several plug-and-play collections); they were not used for defaults.

For x[B, C, *S] with N = prod(S) positions:

    A = phi(x)                     [B, m, N]   feature maps
    B = softmax_N(theta(x))        [B, n, N]   n attention maps over positions
    G = A B^T                      [B, m, n]   gather: second-order attention pooling
    V = softmax_n(rho(x))          [B, n, N]   per-position attention over the n descriptors
    Z = G V                        [B, m, N]   distribute
    out = x + proj(Z)              proj: 1x1 conv m -> C (expands back to C channels)

phi, theta, rho and proj are 1x1 projections with bias.

Defaults and ambiguities:
- c_m = c_n = channels // 4 (floor 1). The paper treats m and n as hyper-parameters and
  gives no single default in the equations; without official code this is a choice
  (a 4x reduction, in line with the paper's emphasis on a light block).
- residual=True: the block's output is added to its input (the paper's Figure 3 shows the
  double attention output expanded by a 1x1 conv and merged into the residual path).
  residual=False returns proj(Z) alone.
- The projections are nn.Linear on the channel axis (same function as 1x1 convolutions),
  so the block accepts x[B, C, *spatial] of spatial rank 1-3 (the paper applies it to
  images and to videos, x[B, C, T, H, W]) with rank-independent parameter shapes.
- Initialisation: PyTorch defaults; the paper states none and the block has no
  initialisation-dependent identity.

Parameter names follow the paper: phi (A), theta (B), rho (V), then proj.
"""

from __future__ import annotations

import torch
from torch import nn


class DoubleAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        c_m: int | None = None,
        c_n: int | None = None,
        residual: bool = True,
    ):
        super().__init__()
        self.channels = channels
        self.c_m = c_m if c_m is not None else max(1, channels // 4)
        self.c_n = c_n if c_n is not None else max(1, channels // 4)
        self.residual = residual
        self.phi = nn.Linear(channels, self.c_m)
        self.theta = nn.Linear(channels, self.c_n)
        self.rho = nn.Linear(channels, self.c_n)
        self.proj = nn.Linear(self.c_m, channels)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """The global descriptors G[B, m, n]."""
        xf = x.flatten(2).transpose(1, 2)  # [B, N, C]
        a = self.phi(xf)  # [B, N, m]
        attn_maps = self.theta(xf).softmax(dim=1)  # [B, N, n], over positions
        return a.transpose(1, 2) @ attn_maps

    def attention_vectors(self, x: torch.Tensor) -> torch.Tensor:
        """The distribution weights V[B, n, N] (each column sums to one over n)."""
        return self.rho(x.flatten(2).transpose(1, 2)).softmax(dim=-1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not 1 <= x.dim() - 2 <= 3:
            raise ValueError(f"a2net: expected x[B, C, *spatial] with 1-3 spatial dims, got {tuple(x.shape)}")
        z = self.gather(x) @ self.attention_vectors(x)  # [B, m, N]
        out = self.proj(z.transpose(1, 2)).transpose(1, 2).reshape(x.shape)
        return x + out if self.residual else out


Reference = DoubleAttention
