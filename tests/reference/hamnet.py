"""Hamburger (HamNet) with NMF matrix decomposition, hand-written reference.

Paper: Zhengyang Geng, Meng-Hao Guo, Hongxu Chen, Xia Li, Ke Wei, Zhouchen Lin,
"Is Attention Better Than Matrix Decomposition?", ICLR 2021.
Official code: Gsunshine/Enjoy-Hamburger (seg/HamNet/hamburger/{burger,ham,bread}.py,
settings.py).

Hamburger V2 (the segmentation default, settings.VERSION = 'V2'):
  z   = relu(lower_bread(x))              1x1 conv C -> D (with bias); ReLU keeps the
                                          matrix non-negative for NMF
  ham = NMF(z)                            low-rank reconstruction, see below
  y   = upper_bread(cheese(ham))          cheese: 1x1 conv D -> D (no bias) + BN + ReLU;
                                          upper bread: 1x1 conv D -> C (no bias)
  out = relu(x + y)
V1 (version="V1") has no cheese and puts a BN after the upper bread.

NMF (S groups, X_s in R^{d x N}, d = D / S, rank R):
  bases B ~ U[0, 1)^{d x R}, L2-normalised over d (fresh random draw every forward:
  rand_init=True; pass `generator` for reproducibility)
  C = softmax_R(inv_t * X^T B)            (inv_t = 1 for NMF)
  repeat K times (K = train_steps in train mode, eval_steps in eval mode):
      C <- C * (X^T B) / (C B^T B + 1e-6)
      B <- B * (X C) / (B C^T C + 1e-6)
  C <- C * (X^T B) / (C B^T B + 1e-6)     (one more coefficient update)
  ham = B C^T
The K iterations run without gradient and only the final coefficient update is
differentiated ("one-step gradient", official default); one_step_grad=False
back-propagates through every iteration (forward value identical).

Defaults (official settings.py / module defaults): D = ham_channels = 512 (MD_D),
S = 1, R = 64, train_steps = 6, eval_steps = 7 (module default; the VOC
settings.py overrides EVAL_STEPS = 6), inv_t = 1, rand_init = True, version = V2.
Initialisation: convs N(0, sqrt(2 / (k*k*out))), BN weight 1 / bias 0.

Not implemented: VQ and CD decompositions, V2+ (dual spatial/channel hams),
rand_init=False with online-updated bases, the light-ham mmseg head.

Paper vs code: the paper's Hamburger is "lower bread -> ham -> cheese -> upper
bread" with the skip connection; the official seg code additionally applies ReLU
after the residual sum, and the one-step gradient is the code's default (the
paper presents it as the recommended training scheme). Followed the code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class HamNet(nn.Module):
    def __init__(
        self,
        channels: int,
        ham_channels: int = 512,
        rank: int = 64,
        groups: int = 1,
        train_steps: int = 6,
        eval_steps: int = 7,
        inv_t: float = 1.0,
        one_step_grad: bool = True,
        version: str = "V2",
        eps: float = 1e-6,
    ):
        super().__init__()
        if version not in ("V1", "V2"):
            raise ValueError("version must be 'V1' or 'V2'")
        if ham_channels % groups:
            raise ValueError("ham_channels must be divisible by groups")
        self.S, self.D, self.R = groups, ham_channels, rank
        self.train_steps, self.eval_steps = train_steps, eval_steps
        self.inv_t = inv_t
        self.one_step_grad = one_step_grad
        self.version = version
        self.eps = eps
        self.lower_bread = nn.Conv2d(channels, ham_channels, 1)
        if version == "V2":
            self.cheese = nn.Sequential(
                nn.Conv2d(ham_channels, ham_channels, 1, bias=False), nn.BatchNorm2d(ham_channels), nn.ReLU()
            )
            self.upper_bread = nn.Conv2d(ham_channels, channels, 1, bias=False)
        else:
            self.upper_bread = nn.Sequential(nn.Conv2d(ham_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # --- NMF -----------------------------------------------------------------
    def _update_coef(self, x, bases, coef):
        num = torch.bmm(x.transpose(1, 2), bases)
        den = torch.bmm(coef, torch.bmm(bases.transpose(1, 2), bases))
        return coef * num / (den + self.eps)

    def _update_bases(self, x, bases, coef):
        num = torch.bmm(x, coef)
        den = torch.bmm(bases, torch.bmm(coef.transpose(1, 2), coef))
        return bases * num / (den + self.eps)

    def _iterate(self, x, bases, steps):
        coef = F.softmax(self.inv_t * torch.bmm(x.transpose(1, 2), bases), dim=-1)
        for _ in range(steps):
            coef = self._update_coef(x, bases, coef)
            bases = self._update_bases(x, bases, coef)
        return bases, coef

    def nmf(
        self,
        z: torch.Tensor,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        return_factors: bool = False,
    ):
        """Low-rank NMF reconstruction of a non-negative z[B, D, H, W]."""
        b, d_all = z.shape[:2]
        d = d_all // self.S
        x = z.reshape(b * self.S, d, -1)
        if steps is None:
            steps = self.train_steps if self.training else self.eval_steps
        bases = torch.rand((b * self.S, d, self.R), generator=generator, dtype=z.dtype, device=z.device)
        bases = F.normalize(bases, dim=1)
        if self.one_step_grad:
            with torch.no_grad():
                bases, coef = self._iterate(x, bases, steps)
        else:
            bases, coef = self._iterate(x, bases, steps)
        coef = self._update_coef(x, bases, coef)
        out = torch.bmm(bases, coef.transpose(1, 2)).reshape(z.shape)
        if return_factors:
            return out, bases, coef
        return out

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        z = F.relu(self.lower_bread(x))
        y = self.nmf(z, generator)
        if self.version == "V2":
            y = self.cheese(y)
        y = self.upper_bread(y)
        return F.relu(x + y)


Reference = HamNet
