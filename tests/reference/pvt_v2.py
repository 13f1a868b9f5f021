"""PVT v2's spatial-reduction attention: the reference is timm's own module.

Paper: Wenhai Wang, Enze Xie, Xiang Li, Deng-Ping Fan, Kaitao Song, Ding Liang, Tong Lu, Ping Luo,
Ling Shao, "PVT v2: Improved Baselines with Pyramid Vision Transformer", Computational Visual Media
8(3), 2022.
Official code: https://github.com/whai362/PVT (`classification/pvt_v2.py`, `Attention`); timm 1.0.x
ports it as `timm.models.pvt_v2.Attention`, which is the oracle here (timm is a test dependency).

timm's forward takes the token sequence x[B, N, C] and feat_size (H, W); the spec takes the tokens
on their grid, x[B, H, W, C]. `PvtV2Attention` flattens the grid row-major (N = H * W, the order of
timm's patch embedding), calls timm's module and unflattens its output: no arithmetic of its own.
Parameters by the spec's names: channels (timm `dim`), num_heads 1, sr_ratio 8 (stage 1),
linear_attn (PVT v2-li: adaptive pool to 7, 1x1 conv, LayerNorm, GELU), qkv_bias True;
pool_size and ln_eps, fixed in timm (7, 1e-5), are set on timm's pool and norm modules. The state
dict keys are timm's (`q`, `kv`, `proj`, `sr`, `norm`), the spec's too.
"""

from __future__ import annotations

from timm.models.pvt_v2 import Attention
from torch import nn


class PvtV2Attention(nn.Module):
    def __init__(self, channels, num_heads=1, sr_ratio=8, linear_attn=False, pool_size=7, qkv_bias=True, ln_eps=1e-5):
        super().__init__()
        self.attn = Attention(
            channels, num_heads=num_heads, sr_ratio=sr_ratio, linear_attn=linear_attn, qkv_bias=qkv_bias
        )
        if linear_attn:  # timm fixes the pool at 7 and the LayerNorm eps at 1e-5
            self.attn.pool = nn.AdaptiveAvgPool2d(pool_size)
        if self.attn.norm is not None:
            self.attn.norm.eps = ln_eps

    def forward(self, x):
        b, h, w, c = x.shape
        return self.attn(x.reshape(b, h * w, c), [h, w]).reshape(b, h, w, c)


def key_map(module: PvtV2Attention) -> dict:
    """Spec keys -> reference keys (timm's, under `attn.`)."""
    return {k: f"attn.{k}" for k in module.attn.state_dict()}
