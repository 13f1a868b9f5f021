"""PSANet: point-wise spatial attention module (PSA), hand-written reference.

Paper: Hengshuang Zhao, Yi Zhang, Shu Liu, Jianping Shi, Chen Change Loy, Dahua Lin,
Jiaya Jia, "PSANet: Point-wise Spatial Attention Network for Scene Parsing",
ECCV 2018.
Official code: hszhao/PSANet (Caffe) and hszhao/semseg (PyTorch: model/psanet.py
class PSA, lib/psa/src/cpu/psamask.cpp for the PSAMask operator), used here.

Bi-directional PSA (psa_type="bi", official psa_type=2), x[B, C, H, W]:
  collect branch:     z_c = reduce(x)        1x1 conv C -> mid (no bias) + BN + ReLU
  distribute branch:  z_d = reduce_p(x)
  both shrunk to h' = (H - 1) // s + 1, w' = (W - 1) // s + 1 (bilinear,
  align_corners=True), s = shrink_factor
  over-complete maps  a_c = attention(z_c), a_d = attention_p(z_d):
      1x1 conv mid -> mid (no bias) + BN + ReLU + 1x1 conv mid -> (2h'-1)(2w'-1) (no bias)
  PSAMask: position i's (2h'-1) x (2w'-1) map, centred on i, is cropped to the
  h' x w' feature map; "collect" gives A_c[j, i] = a_c(i)[j - i] (weights for what i
  collects from every j), "distribute" gives A_d[i, j] = a_d(i)[j - i] (what i
  sends to every j)
  softmax: A_c over j for each i, A_d over i for each j (psa_softmax=True)
  y_c(i) = sum_j z_c(j) A_c[j, i] / nf,   y_d(j) = sum_i z_d(i) A_d[i, j] / nf
  y = proj(cat[y_c, y_d])                 1x1 conv 2*mid -> C (no bias) + BN + ReLU,
                                          bilinearly resized back to H x W
  out = cat[x, y]                         [B, 2C, H, W]  (as the official module)

Defaults (semseg config ade20k_psanet50.yaml / model.psanet.PSA): mid_channels=512,
psa_type="bi", compact=False, shrink_factor=2, normalization_factor=1.0,
psa_softmax=True. The mask size follows from the feature size: feat_size=(59, 59)
(465 x 465 crops at output stride 8, as in the ADE20K config) gives h' = 30 and a
59 x 59 mask. The attention 1x1 conv has (2h'-1)(2w'-1) outputs, so the module is
built for one input size (checked in forward).
Variants: psa_type "collect" / "distribute" (single branch, proj from mid),
compact=True (the maps are predicted directly in absolute h' x w' coordinates),
psa_softmax=False, normalization_factor, shrink_factor.

Notes: where a cropped mask does not cover the whole map (only when mask_size is
given smaller than 2h'-1) the uncovered entries are 0 before the softmax, as in the
official PSAMask. The official module resizes back to ((h'-1)*s+1, (w'-1)*s+1), which
equals H x W exactly when (H - 1) % s == 0 (true for its configs); this reference
resizes to H x W so other sizes stay well defined.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def psa_gather_index(h: int, w: int, mask_h: int, mask_w: int) -> torch.Tensor:
    """idx[j, i]: the channel of position i's over-complete map that refers to j.

    Out-of-mask pairs point to channel mask_h * mask_w (an appended zero channel).
    """
    half_h, half_w = (mask_h - 1) // 2, (mask_w - 1) // 2
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dh = ys[:, None] - ys[None, :] + half_h  # [j, i]: row of j in i's mask
    dw = xs[:, None] - xs[None, :] + half_w
    valid = (dh >= 0) & (dh < mask_h) & (dw >= 0) & (dw < mask_w)
    return torch.where(valid, dh * mask_w + dw, torch.full_like(dh, mask_h * mask_w))


def _branch(cin: int, mid: int, mask_channels: int):
    reduce = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU())
    attention = nn.Sequential(
        nn.Conv2d(mid, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(), nn.Conv2d(mid, mask_channels, 1, bias=False)
    )
    return reduce, attention


class PSANet(nn.Module):
    def __init__(
        self,
        channels: int,
        mid_channels: int = 512,
        feat_size=(59, 59),
        psa_type: str = "bi",
        compact: bool = False,
        shrink_factor: int = 2,
        mask_size=None,
        normalization_factor: float | None = 1.0,
        psa_softmax: bool = True,
    ):
        super().__init__()
        if psa_type not in ("collect", "distribute", "bi"):
            raise ValueError("psa_type must be 'collect', 'distribute' or 'bi'")
        self.feat_size = _pair(feat_size)
        self.psa_type, self.compact, self.shrink = psa_type, compact, shrink_factor
        self.psa_softmax = psa_softmax
        h, w = self.feat_size
        if shrink_factor != 1:
            h, w = (h - 1) // shrink_factor + 1, (w - 1) // shrink_factor + 1
        self.inner = (h, w)
        if compact:
            self.mask = (h, w)
        else:
            self.mask = (2 * h - 1, 2 * w - 1) if mask_size is None else _pair(mask_size)
            if self.mask[0] % 2 == 0 or self.mask[1] % 2 == 0:
                raise ValueError("mask sizes must be odd")
        mask_channels = self.mask[0] * self.mask[1]
        self.normalization_factor = mask_channels if normalization_factor is None else normalization_factor
        first = "distribute" if psa_type == "distribute" else "collect"
        self.reduce, self.attention = _branch(channels, mid_channels, mask_channels)
        if psa_type == "bi":
            self.reduce_p, self.attention_p = _branch(channels, mid_channels, mask_channels)
        self._first = first
        self.proj = nn.Sequential(
            nn.Conv2d(mid_channels * (2 if psa_type == "bi" else 1), channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        if not compact:
            self.register_buffer("index", psa_gather_index(h, w, *self.mask), persistent=False)

    def attention_matrix(self, maps: torch.Tensor, kind: str) -> torch.Tensor:
        """[B, mask_h*mask_w, h', w'] maps -> aggregation matrix M[B, src, dst] (softmaxed over src)."""
        b = maps.shape[0]
        n = self.inner[0] * self.inner[1]
        flat = maps.reshape(b, -1, n)
        if self.compact:
            g = flat  # g[b, j, i]: i's map, absolute j
        else:
            padded = torch.cat([flat, flat.new_zeros(b, 1, n)], dim=1)
            g = torch.gather(padded, 1, self.index.unsqueeze(0).expand(b, n, n))  # g[b, j, i]
        # collect: i gathers from j -> M[j (src), i (dst)] = g[j, i]
        # distribute: i sends to j -> M[i (src), j (dst)] = g[j, i]
        m = g if kind == "collect" else g.transpose(1, 2)
        return F.softmax(m, dim=1) if self.psa_softmax else m

    def _aggregate(self, z: torch.Tensor, attention: nn.Module, kind: str) -> torch.Tensor:
        b, c = z.shape[:2]
        m = self.attention_matrix(attention(z), kind)
        y = torch.bmm(z.reshape(b, c, -1), m) * (1.0 / self.normalization_factor)
        return y.reshape(z.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.feat_size:
            raise ValueError(f"PSANet was built for feature size {self.feat_size}, got {tuple(x.shape[2:])}")

        def shrink(z):
            if self.shrink == 1:
                return z
            return F.interpolate(z, size=self.inner, mode="bilinear", align_corners=True)

        ys = [self._aggregate(shrink(self.reduce(x)), self.attention, self._first)]
        if self.psa_type == "bi":
            ys.append(self._aggregate(shrink(self.reduce_p(x)), self.attention_p, "distribute"))
        y = self.proj(torch.cat(ys, dim=1))
        if y.shape[2:] != x.shape[2:]:
            y = F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=True)
        return torch.cat([x, y], dim=1)


Reference = PSANet
