"""EfficientViT's multi-scale linear attention: the reference is timm's own module.

Paper: Han Cai, Junyan Li, Muyan Hu, Chuang Gan, Song Han, "EfficientViT: Lightweight Multi-Scale
Attention for High-Resolution Dense Prediction", ICCV 2023.
Official code: https://github.com/mit-han-lab/efficientvit (`LiteMLA`); timm 1.0.x ports it as
`timm.models.efficientvit_mit.LiteMLA`, which is the oracle here (timm is a test dependency).

This file only builds timm's module from the spec's parameter names and maps the keys:
- heads = int(channels // head_dim * heads_ratio) unless given; head_dim (timm `dim`) 32 as in
  EfficientViT-B2/B3's blocks; scales (5,); eps 1e-5; use_bias (qkv_bias, proj_bias) False;
  norm_layer (None, BatchNorm2d), proj_norm=False drops the BatchNorm; ReLU kernel.
- `exact=True` returns `LiteMLA64`: timm's module whose attention product runs in the input's dtype.
  timm casts q, k, v to float32 there (so fp16 autocast cannot overflow), which caps a float64
  comparison at float32 precision; the arithmetic is timm's own, the cast is the only change.
"""

from __future__ import annotations

from timm.models.efficientvit_mit import LiteMLA
from torch import nn


class LiteMLA64(LiteMLA):
    def _attn(self, q, k, v):
        out = q @ (k.transpose(-1, -2) @ v)
        return out[..., :-1] / (out[..., -1:] + self.eps)


def efficientvit(
    channels,
    out_channels=None,
    head_dim=32,
    heads_ratio=1.0,
    heads=None,
    scales=(5,),
    eps=1e-5,
    qkv_bias=False,
    proj_bias=False,
    proj_norm=True,
    exact=True,
) -> nn.Module:
    cls = LiteMLA64 if exact else LiteMLA
    return cls(
        channels,
        out_channels or channels,
        heads=heads,
        heads_ratio=heads_ratio,
        dim=head_dim,
        use_bias=(qkv_bias, proj_bias),
        norm_layer=(None, nn.BatchNorm2d if proj_norm else None),
        scales=tuple(scales),
        eps=eps,
    )


def key_map(scales=(5,)) -> dict:
    """Spec keys -> timm keys."""
    m = {
        "qkv.weight": "qkv.conv.weight",
        "qkv.bias": "qkv.conv.bias",
        "proj.weight": "proj.conv.weight",
        "proj.bias": "proj.conv.bias",
    }
    for i in range(len(scales)):
        for k in ("weight", "bias"):
            m[f"aggreg_dw.{i}.{k}"] = f"aggreg.{i}.0.{k}"
            m[f"aggreg_pw.{i}.{k}"] = f"aggreg.{i}.1.{k}"
    for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        m[f"proj_bn.{k}"] = f"proj.norm.{k}"
    return m
