"""SAN: pairwise and patchwise self-attention operator (SAM), hand-written reference.

Paper: Hengshuang Zhao, Jiaya Jia, Vladlen Koltun, "Exploring Self-attention for
Image Recognition", CVPR 2020.
Official code: hszhao/SAN (model/san.py class SAM; lib/sa/functions/*_refpad.py for
the subtraction and aggregation CUDA kernels).

Vector attention over a k x k footprint R(i) (official pad_mode=1: reflection
padding of the footprint at the borders):
  y_i = sum_{j in R(i)} alpha(x_i, x_j) (.) beta(x_j)            (.) = Hadamard product
  beta(x) = conv3(x)                               1x1, C -> out_planes, with bias
Pairwise (sa_type="pairwise", official sa_type=0), subtraction relation:
  delta_ij = [ conv1(x)_i - conv2(x)_j ,  p_i - p_j ]             rel_planes + 2 channels
  p = conv_p(position) with position = (x, y) coordinates in linspace(-1, 1)
  alpha_ij = softmax_{j in R(i)}( gamma(delta_ij) ),  gamma = BN-ReLU-1x1(rel+2 -> rel)
             -BN-ReLU-1x1(rel -> out_planes / share_planes)
Patchwise (sa_type="patchwise", official sa_type=1):
  alpha_i = gamma([conv1(x)_i, conv2(x)_{R(i)}])   (the whole footprint concatenated,
             rel_planes * (k*k + 1) channels), gamma = BN-ReLU-1x1(-> out/share)
             -BN-ReLU-1x1(-> k*k * out/share); no softmax (as in the official code).
The attention has out_planes / share_planes channels; output channel c uses
attention channel c % (out_planes / share_planes) (official aggregation kernel).

Defaults (official SAN bottleneck built by SAN._make_layer for `planes` input
channels): rel_planes = channels // 16, out_planes = channels // 4 (the SAM output
feeds the bottleneck's BN-ReLU-1x1 expansion), share_planes = 8, kernel_size = 7
(stages 2-5; 3 in the first stage), stride 1. All convolutions use PyTorch's
default init (the official code does not re-initialise).

Note: reflection padding needs H, W > kernel_size // 2.
Out of scope: stride > 1 (the official model down-samples with max pooling
outside SAM), zero-padding mode (pad_mode=0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def position(h: int, w: int, dtype=None, device=None) -> torch.Tensor:
    """[1, 2, H, W] coordinates: channel 0 the column (x), channel 1 the row (y), in [-1, 1]."""
    loc_w = torch.linspace(-1.0, 1.0, w, dtype=dtype, device=device).unsqueeze(0).expand(h, w)
    loc_h = torch.linspace(-1.0, 1.0, h, dtype=dtype, device=device).unsqueeze(1).expand(h, w)
    return torch.stack([loc_w, loc_h]).unsqueeze(0)


class SAN(nn.Module):
    def __init__(
        self,
        channels: int,
        rel_planes: int | None = None,
        out_planes: int | None = None,
        share_planes: int = 8,
        kernel_size: int = 7,
        sa_type: str = "pairwise",
    ):
        super().__init__()
        rel_planes = channels // 16 if rel_planes is None else rel_planes
        out_planes = channels // 4 if out_planes is None else out_planes
        if sa_type not in ("pairwise", "patchwise"):
            raise ValueError("sa_type must be 'pairwise' or 'patchwise'")
        if out_planes % share_planes:
            raise ValueError("out_planes must be divisible by share_planes")
        self.sa_type, self.kernel_size = sa_type, kernel_size
        self.rel_planes, self.out_planes, self.share_planes = rel_planes, out_planes, share_planes
        kk = kernel_size * kernel_size
        cw = out_planes // share_planes
        self.conv1 = nn.Conv2d(channels, rel_planes, 1)
        self.conv2 = nn.Conv2d(channels, rel_planes, 1)
        self.conv3 = nn.Conv2d(channels, out_planes, 1)
        if sa_type == "pairwise":
            self.conv_w = nn.Sequential(
                nn.BatchNorm2d(rel_planes + 2),
                nn.ReLU(),
                nn.Conv2d(rel_planes + 2, rel_planes, 1, bias=False),
                nn.BatchNorm2d(rel_planes),
                nn.ReLU(),
                nn.Conv2d(rel_planes, cw, 1),
            )
            self.conv_p = nn.Conv2d(2, 2, 1)
        else:
            self.conv_w = nn.Sequential(
                nn.BatchNorm2d(rel_planes * (kk + 1)),
                nn.ReLU(),
                nn.Conv2d(rel_planes * (kk + 1), cw, 1, bias=False),
                nn.BatchNorm2d(cw),
                nn.ReLU(),
                nn.Conv2d(cw, kk * cw, 1),
            )

    def _footprint(self, t: torch.Tensor) -> torch.Tensor:
        """Reflection-padded k x k footprints: [B, C, k*k, H*W]."""
        b, c, h, w = t.shape
        k = self.kernel_size
        p = k // 2
        return F.unfold(F.pad(t, (p, p, p, p), mode="reflect"), k).reshape(b, c, k * k, h * w)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights [B, out_planes / share_planes, k*k, H*W]."""
        b, _, h, w = x.shape
        kk = self.kernel_size**2
        x1, x2 = self.conv1(x), self.conv2(x)
        if self.sa_type == "pairwise":
            rel = x1.reshape(b, self.rel_planes, 1, h * w) - self._footprint(x2)
            p = self.conv_p(position(h, w, dtype=x.dtype, device=x.device))
            prel = p.reshape(1, 2, 1, h * w) - self._footprint(p)
            delta = torch.cat([rel, prel.expand(b, -1, -1, -1)], dim=1)
            return F.softmax(self.conv_w(delta), dim=2)
        patch = torch.cat(
            [x1.reshape(b, self.rel_planes, 1, h * w), self._footprint(x2).reshape(b, self.rel_planes * kk, 1, h * w)],
            dim=1,
        )
        return self.conv_w(patch).reshape(b, -1, kk, h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        kk = self.kernel_size**2
        weights = self.attention(x)  # [B, Cw, kk, HW]
        cw = weights.shape[1]
        v = self._footprint(self.conv3(x)).reshape(b, self.share_planes, cw, kk, h * w)
        out = (weights.unsqueeze(1) * v).sum(dim=3)  # channel c uses c % cw
        return out.reshape(b, self.out_planes, h, w)


Reference = SAN
