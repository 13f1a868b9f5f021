"""RSTAN: recurrent spatial-temporal attention (one attention step).

Paper: Wenbin Du, Yali Wang, Yu Qiao, "Recurrent Spatial-Temporal Attention
Network for Action Recognition in Videos", IEEE Transactions on Image
Processing 27(3), 2018. No official code was found.

Shapes: x[B, D, T, H, W] (the CNN feature maps of T sampled frames; D is the
`channels` argument), h[B, hidden] the LSTM hidden state h_{t-1}.
Output: the spatio-temporal feature [B, D] fed to the LSTM at this step.

Following the paper (and the survey's Sec. 7.2), X(n, k) is the D-vector at
location k of frame n:
  spatial   a(n, k)   = w_s^T tanh(W_hs h + W_xs X(n, k) + b_s)
            alpha(n, k) = softmax over k (the H*W locations of frame n)
            I_n        = sum_k alpha(n, k) X(n, k)          (one global feature per frame)
  temporal  b(n)      = w_t^T tanh(W_ht h + W_it I_n + b_t)
            beta(n)    = softmax over n (the T frames)
            out        = sum_n beta(n) I_n
Spatial then temporal, in series, as in the paper.

Defaults: hidden_size=512 and attn_dim=512 are not taken from the paper
(which we could not consult for these sizes) and are chosen; channels is the
backbone's feature width. Biases: the bias of each tanh argument sits on the
feature projection (W_xs, W_it); W_hs, W_ht have none; the score vectors
w_s, w_t have none (a bias there cancels in the softmax). Initialisation:
PyTorch defaults.
"""

from __future__ import annotations

import torch
from torch import nn


class RSTAN(nn.Module):
    def __init__(self, channels: int, hidden_size: int = 512, attn_dim: int = 512):
        super().__init__()
        self.channels = channels
        self.hidden_size = hidden_size
        # spatial attention
        self.W_hs = nn.Linear(hidden_size, attn_dim, bias=False)
        self.W_xs = nn.Linear(channels, attn_dim)  # + b_s
        self.w_s = nn.Linear(attn_dim, 1, bias=False)
        # temporal attention
        self.W_ht = nn.Linear(hidden_size, attn_dim, bias=False)
        self.W_it = nn.Linear(channels, attn_dim)  # + b_t
        self.w_t = nn.Linear(attn_dim, 1, bias=False)

    def spatial_weights(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """alpha[B, T, H*W], sums to 1 over locations."""
        f = x.flatten(3).permute(0, 2, 3, 1)  # [B, T, K, D]
        a = self.w_s(torch.tanh(self.W_hs(h)[:, None, None, :] + self.W_xs(f))).squeeze(-1)
        return torch.softmax(a, dim=-1)

    def frame_features(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """I[B, T, D]."""
        f = x.flatten(3).permute(0, 2, 3, 1)
        return (self.spatial_weights(x, h).unsqueeze(-1) * f).sum(dim=2)

    def temporal_weights(self, frames: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """beta[B, T], sums to 1 over frames, from I[B, T, D]."""
        b = self.w_t(torch.tanh(self.W_ht(h)[:, None, :] + self.W_it(frames))).squeeze(-1)
        return torch.softmax(b, dim=-1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.channels:
            raise ValueError(f"expected x[B, {self.channels}, T, H, W], got {tuple(x.shape)}")
        frames = self.frame_features(x, h)
        beta = self.temporal_weights(frames, h)
        return (beta.unsqueeze(-1) * frames).sum(dim=1)


Reference = RSTAN
