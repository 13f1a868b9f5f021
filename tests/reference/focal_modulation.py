"""Focal modulation (FocalNet), eager PyTorch, written from the paper's equations.

Paper: Jianwei Yang, Chunyuan Li, Xiyang Dai, Lu Yuan, Jianfeng Gao, "Focal Modulation Networks",
NeurIPS 2022 (Sec. 3.2, Eqs. 5-10).
Official code: https://github.com/microsoft/FocalNet (`classification/focalnet.py`, `FocalModulation`);
timm 1.0.x ports it as `timm.models.focalnet.FocalModulation` (channels first, 1x1 convs), which the
spec's tests also compare against directly.

For tokens X[B, H, W, C] (the official layout):
- [Q, Z^0, G] = f(X): one linear to C + C + (L + 1) channels (query, context, gates).
- Hierarchical contextualization (Eq. 6-7): Z^l = GELU(DWConv_l(Z^(l-1))), l = 1..L, kernel
  k_l = focal_factor * (l - 1) + focal_window, zero padding k_l // 2, no bias;
  Z^(L+1) = GELU(AvgPool(Z^L)) (the global level, broadcast over positions).
- Gated aggregation (Eq. 8-9): Z^out = sum_{l=1}^{L+1} G^l * Z^l (divided by L + 1 when
  normalize_modulator); modulator M = h(Z^out), h a 1x1 projection (bias).
- Y = proj(Q * M) (Eq. 10), with a LayerNorm before proj when use_post_norm.

Defaults: FocalNet-T/S/B SRF, focal_level 2, focal_window 3, focal_factor 2, biases on, LayerNorm
eps 1e-5, layout channels_last. Variant: layout channels_first takes and returns X[B, C, H, W]
(timm's layout), permuted to channels-last at entry and back at exit. Choices: the depthwise convs are written as sums of shifted maps (a loop over kernel
taps), and the linears work on the last axis; key names follow the official module (`f`, `h`,
`focal_layers.<l>`, `proj`, `norm`), with h's weight [C, C] (the spec keeps the 1x1 conv's
[C, C, 1, 1]; the oracle reshapes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DepthwiseTaps(nn.Module):
    """Depthwise k x k conv (zero padding k // 2, no bias) on [B, H, W, C], tap by tap."""

    def __init__(self, channels: int, k: int):
        super().__init__()
        self.k = k
        self.weight = nn.Parameter(torch.randn(channels, 1, k, k) * 0.1)

    def forward(self, z):
        b, h, w, c = z.shape
        p = self.k // 2
        zp = F.pad(z, (0, 0, p, p, p, p))  # pad W then H (channels-last)
        out = torch.zeros_like(z)
        for i in range(self.k):
            for j in range(self.k):
                out = out + zp[:, i : i + h, j : j + w, :] * self.weight[:, 0, i, j]
        return out


class FocalModulation(nn.Module):
    def __init__(
        self,
        channels: int,
        focal_level: int = 2,
        focal_window: int = 3,
        focal_factor: int = 2,
        bias: bool = True,
        use_post_norm: bool = False,
        normalize_modulator: bool = False,
        ln_eps: float = 1e-5,
        layout: str = "channels_last",
    ):
        super().__init__()
        assert layout in ("channels_last", "channels_first")
        self.c, self.levels, self.normalize_modulator = channels, focal_level, normalize_modulator
        self.channels_first = layout == "channels_first"
        self.f = nn.Linear(channels, 2 * channels + focal_level + 1, bias=bias)
        self.h = nn.Linear(channels, channels, bias=bias)
        self.focal_layers = nn.ModuleList(
            DepthwiseTaps(channels, focal_factor * l + focal_window) for l in range(focal_level)
        )
        self.proj = nn.Linear(channels, channels)
        self.norm = nn.LayerNorm(channels, eps=ln_eps) if use_post_norm else None

    def forward(self, x):  # x [B, H, W, C] ([B, C, H, W] channels_first)
        if self.channels_first:
            return self._forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self._forward(x)

    def _forward(self, x):  # x [B, H, W, C]
        c, L = self.c, self.levels
        t = self.f(x)
        q, z, gates = t[..., :c], t[..., c : 2 * c], t[..., 2 * c :]
        z_out = torch.zeros_like(q)
        for l, layer in enumerate(self.focal_layers):  # Z^l = GELU(DWConv(Z^(l-1)))
            z = F.gelu(layer(z))
            z_out = z_out + gates[..., l : l + 1] * z
        z_global = F.gelu(z.mean(dim=(1, 2), keepdim=True))  # Z^(L+1)
        z_out = z_out + gates[..., L : L + 1] * z_global
        if self.normalize_modulator:
            z_out = z_out / (L + 1)
        self.last_modulator = m = self.h(z_out)
        y = q * m
        if self.norm is not None:
            y = self.norm(y)
        return self.proj(y)


def key_map(params: dict | None = None) -> dict:
    """Spec keys -> reference keys: identical names (h's 1x1 conv weight is reshaped)."""
    return {}


class TimmFocalModulation(nn.Module):
    """timm's FocalModulation (channels first); with layout channels_last it is called on channels-last
    tokens through a permute each way, no arithmetic of its own. Parameters by the spec's names; the
    LayerNorm2d eps set to ln_eps."""

    def __init__(
        self,
        channels: int,
        focal_level: int = 2,
        focal_window: int = 3,
        focal_factor: int = 2,
        bias: bool = True,
        use_post_norm: bool = False,
        normalize_modulator: bool = False,
        ln_eps: float = 1e-5,
        layout: str = "channels_last",
    ):
        super().__init__()
        from functools import partial

        from timm.layers import LayerNorm2d
        from timm.models.focalnet import FocalModulation as Timm

        self.m = Timm(
            channels,
            focal_window=focal_window,
            focal_level=focal_level,
            focal_factor=focal_factor,
            bias=bias,
            use_post_norm=use_post_norm,
            normalize_modulator=normalize_modulator,
            norm_layer=partial(LayerNorm2d, eps=ln_eps),
        )
        self.channels_first = layout == "channels_first"

    def forward(self, x):
        if self.channels_first:
            return self.m(x)
        return self.m(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def timm_key_map(module: TimmFocalModulation) -> dict:
    """Spec keys -> keys of the wrapped timm module (its focal convs sit in Sequentials)."""
    return {
        k.replace(".0.weight", ".weight") if k.startswith("focal_layers") else k: f"m.{k}"
        for k in module.m.state_dict()
    }
