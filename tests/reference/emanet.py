"""Expectation-Maximization Attention Unit (EMAU), hand-written eager reference.

Paper: Xia Li, Zhisheng Zhong, Jianlong Wu, Yibo Yang, Zhouchen Lin, Hong Liu,
"Expectation-Maximization Attention Networks for Semantic Segmentation", ICCV 2019.
Official code: https://github.com/XiaLiPKU/EMANet (`network.py`, class EMAU; `settings.py`;
the bases' moving average is in `train.py`).

For x[B, C, H, W], N = H*W, K bases mu[C, K] (a buffer, L2-normalised columns):

    X   = conv1(x)                          1x1 conv with bias, [B, C, N]
    repeat T = stage_num times:
        Z  = softmax_K(X^T mu)              E-step, responsibilities [B, N, K]
        mu = X Z / (eps + sum_N Z)          M-step, weighted means [B, C, K]
        mu = mu / (eps + ||mu||_2 over C)   eps = 1e-6
    X~  = relu(mu Z^T)                      reconstruction [B, C, N]
    out = relu(BN(conv2(X~)) + x)           conv2: 1x1 conv without bias

Training mode also updates the bases buffer with the batch mean of the final mu:
mu0 <- momentum * mu0 + (1 - momentum) * mean_B(mu_T)  (no re-normalisation, as in the
official train.py). Eval mode leaves it unchanged.

Defaults (official code):
- k = 64 bases, stage_num = 3 (settings.STAGE_NUM), momentum = 0.9 (settings.EM_MOM).
- mu initialised N(0, sqrt(2/k)) then L2-normalised over channels.
- conv1/conv2 weights N(0, sqrt(2 / fan_out)) = N(0, sqrt(2 / C)) for the 1x1 kernels
  (conv1's bias keeps PyTorch's default init, as in the official code); BN weight 1,
  bias 0, momentum 3e-4 (settings.BN_MOM, PyTorch convention), eps 1e-5.
- stop_em_grad=True: the official forward runs the EM iterations under torch.no_grad(),
  so no gradient reaches conv1 (or flows through Z and mu); the author confirms this in
  XiaLiPKU/EMANet issue #14 and reports it trains slightly better. stop_em_grad=False
  back-propagates through the unrolled iterations (the paper's "unrolled EM" reading).

Paper vs code: the paper presents the EM steps as part of the differentiable network
(with only the bases' initial value maintained by moving average); the official code cuts
the gradient through all iterations. This reference follows the code by default. The
paper's temperature lambda in the E-step is 1 in the code (not exposed).
The moving-average update is done inside forward (in train mode) rather than in the
training loop; the result is the same as the official train.py for one device.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _l2norm(t: torch.Tensor, dim: int, eps: float = 1e-6) -> torch.Tensor:
    return t / (eps + t.norm(dim=dim, keepdim=True))


class EMAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        k: int = 64,
        stage_num: int = 3,
        momentum: float | None = 0.9,
        stop_em_grad: bool = True,
        bn_momentum: float = 3e-4,
    ):
        super().__init__()
        self.channels = channels
        self.k = k
        self.stage_num = stage_num
        self.momentum = momentum
        self.stop_em_grad = stop_em_grad
        mu = torch.randn(1, channels, k) * math.sqrt(2.0 / k)
        self.register_buffer("mu", _l2norm(mu, dim=1))
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.conv2 = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels, momentum=bn_momentum)
        for conv in (self.conv1, self.conv2):
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / channels))

    def em(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the EM iterations on feats[B, C, N]; returns (Z[B, N, K], mu[B, C, K])."""
        mu = self.mu.expand(feats.shape[0], -1, -1)
        z = None
        for _ in range(self.stage_num):
            z = torch.softmax(feats.transpose(1, 2) @ mu, dim=2)  # E-step
            z_norm = z / (1e-6 + z.sum(dim=1, keepdim=True))
            mu = _l2norm(feats @ z_norm, dim=1)  # M-step
        return z, mu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"emanet: expected x[B, C, H, W], got {tuple(x.shape)}")
        if self.stage_num < 1:
            raise ValueError("emanet: stage_num must be >= 1")
        b, c, h, w = x.shape
        feats = self.conv1(x).view(b, c, h * w)
        if self.stop_em_grad:
            with torch.no_grad():
                z, mu = self.em(feats)
        else:
            z, mu = self.em(feats)
        if self.training and self.momentum is not None:
            # Out of place: the old bases may still be needed by autograd (stop_em_grad=False).
            self.mu = (self.momentum * self.mu + (1 - self.momentum) * mu.detach().mean(dim=0, keepdim=True)).detach()
        rec = torch.relu(mu @ z.transpose(1, 2)).view(b, c, h, w)
        return torch.relu(self.bn(self.conv2(rec)) + x)


Reference = EMAttention
