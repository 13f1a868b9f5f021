"""STA: parameter-free spatial-temporal attention for video re-identification.

Paper: Yang Fu, Xiaoyang Wang, Yunchao Wei, Thomas Huang, "STA: Spatial-Temporal
Attention for Large-Scale Video-based Person Re-Identification", AAAI 2019.
No official code was released (none found).

Shapes: x[B, T, C, H, W], the backbone feature maps f_n of the T = N frames of a
clip. Output: [B, 2C, H, W], the two fused clip-level maps [X1, X2] concatenated
along channels (the paper then applies global average pooling and an FC layer,
which belong to the network, not to the attention).

Paper, Sec. 3.2 (n a frame, (h, w) a position, k one of K horizontal blocks):
  g_n(h, w) = ||f_n(h, w)||^2 / sum_{h', w'} ||f_n(h', w')||^2      per-frame spatial map
  s_{n,k}   = sum_{(h, w) in block k} g_n(h, w)                    (l1 norm of the block)
  S(n, k)   = s_{n,k} / sum_n' s_{n',k}                            normalised over frames
  X1, block k = f_{n*,k} with n* = argmax_n S(n, k)                 most attended frame
  X2, block k = sum_n S(n, k) f_{n,k}                               weighted sum
  output = [X1, X2]
S sums to 1 over frames for every block; there are no parameters, so any
clip length works.

Defaults: parts K=4 (the paper's setting). The blocks split the H rows into K
contiguous groups; when K does not divide H the first H mod K groups get one
extra row (torch.tensor_split). No epsilon in the normalisations (the paper has
none): an all-zero frame gives 0/0.

Ambiguity: the paper writes the map as ||sum_d f(h,w,d)^2||_2 over
sum ||sum_d f^2||_2, i.e. the squared L2 norm of the feature vector normalised
over the frame (implemented, squared=True); reimplementations often use the
plain L2 norm (squared=False). Gradients flow through the scores as well as the
features (the paper does not stop them); the argmax selection itself is
piecewise constant.
"""

from __future__ import annotations

import torch
from torch import nn


class STA(nn.Module):
    def __init__(self, channels: int | None = None, parts: int = 4, squared: bool = True):
        super().__init__()
        self.channels = channels
        self.parts = parts
        self.squared = squared

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """S[B, T, K], sums to 1 over frames."""
        e = (x * x).sum(dim=2)  # [B, T, H, W]
        if not self.squared:
            e = e.sqrt()
        g = e / e.sum(dim=(2, 3), keepdim=True)
        s = torch.stack([blk.sum(dim=(2, 3)) for blk in torch.tensor_split(g, self.parts, dim=2)], dim=-1)
        return s / s.sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or (self.channels is not None and x.shape[2] != self.channels):
            raise ValueError(f"expected x[B, T, {self.channels or 'C'}, H, W], got {tuple(x.shape)}")
        S = self.scores(x)  # [B, T, K]
        best = S.argmax(dim=1)  # [B, K]
        x1, x2 = [], []
        for k, blk in enumerate(torch.tensor_split(x, self.parts, dim=3)):  # [B, T, C, h_k, W]
            idx = best[:, k].view(-1, 1, 1, 1, 1).expand(-1, 1, *blk.shape[2:])
            x1.append(blk.gather(1, idx).squeeze(1))
            x2.append((S[:, :, k, None, None, None] * blk).sum(dim=1))
        return torch.cat((torch.cat(x1, dim=2), torch.cat(x2, dim=2)), dim=1)


Reference = STA
