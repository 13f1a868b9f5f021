"""Global context (GC) block, hand-written eager reference.

Paper: Yue Cao, Jiarui Xu, Stephen Lin, Fangyun Wei, Han Hu, "GCNet: Non-local Networks
Meet Squeeze-Excitation Networks and Beyond", ICCV Workshops 2019 (extended as "Global
Context Networks", TPAMI 2020).
Official code: https://github.com/xvjiarui/GCNet (`ContextBlock` /
`mmdet/ops/gcb/context_block.py`; also mmcv.cnn.ContextBlock).

    w       = softmax_HW(conv_mask(x))               conv_mask: 1x1 conv C -> 1 with bias
    context = sum_j w_j x_j                          [B, C, 1, 1]
    t(c)    = conv2(relu(LN(conv1(c))))              bottleneck C -> C*ratio -> C, LN over [P, 1, 1]
    add:      out = x + t_add(context)               (default)
    mul:      out = x * sigmoid(t_mul(context))
    both:     out = x * sigmoid(t_mul(context)) + t_add(context)   (mul first, as in the code)

Defaults (official code / paper):
- ratio = 1/16: the paper's default bottleneck ratio r = 16 (the official configs ship
  r16 and r4 variants); planes = int(channels * ratio), floored at 1 here.
- pooling_type = "att" (attention pooling); "avg" is the paper's ablation (global
  average pooling, i.e. the SE-style context).
- fusion_types = ("channel_add",): the paper's choice; ("channel_mul",) and both are the
  ablation variants.
- Initialisation: conv_mask Kaiming-normal (fan_in); the last conv of each transform
  is zero-initialised (official `last_zero_init`), so the "add" block starts as the
  identity (a "mul" block starts as x * 0.5).
- LayerNorm eps 1e-5 (PyTorch default, the official module uses nn.LayerNorm defaults).

Parameter names follow the official module: conv_mask, channel_add_conv.{0,1,3},
channel_mul_conv.{0,1,3}. The transforms are 1x1 Conv2d as in the official code, so the
block is 2-D only (as in the catalog).
"""

from __future__ import annotations

import torch
from torch import nn


def _transform(channels: int, planes: int) -> nn.Sequential:
    t = nn.Sequential(
        nn.Conv2d(channels, planes, 1),
        nn.LayerNorm([planes, 1, 1]),
        nn.ReLU(),
        nn.Conv2d(planes, channels, 1),
    )
    nn.init.zeros_(t[3].weight)
    nn.init.zeros_(t[3].bias)
    return t


class GlobalContext(nn.Module):
    def __init__(
        self,
        channels: int,
        ratio: float = 1.0 / 16,
        pooling_type: str = "att",
        fusion_types: tuple[str, ...] = ("channel_add",),
    ):
        super().__init__()
        if pooling_type not in ("att", "avg"):
            raise ValueError(f"gcnet: pooling_type must be 'att' or 'avg', got {pooling_type!r}")
        if not fusion_types or any(f not in ("channel_add", "channel_mul") for f in fusion_types):
            raise ValueError(
                f"gcnet: fusion_types must be a non-empty subset of channel_add/channel_mul, got {fusion_types}"
            )
        self.channels = channels
        self.planes = max(1, int(channels * ratio))
        self.pooling_type = pooling_type
        self.fusion_types = tuple(fusion_types)
        if pooling_type == "att":
            self.conv_mask = nn.Conv2d(channels, 1, 1)
            nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(self.conv_mask.bias)
        else:
            self.conv_mask = None
        self.channel_add_conv = _transform(channels, self.planes) if "channel_add" in fusion_types else None
        self.channel_mul_conv = _transform(channels, self.planes) if "channel_mul" in fusion_types else None

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention-pooling weights w[B, H*W] (sum to one); uniform for 'avg' pooling."""
        b, _, h, w = x.shape
        if self.conv_mask is None:
            return x.new_full((b, h * w), 1.0 / (h * w))
        return self.conv_mask(x).view(b, h * w).softmax(dim=-1)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The global context vector [B, C, 1, 1]."""
        b, c, _, _ = x.shape
        w = self.attention(x)
        return torch.einsum("bcn,bn->bc", x.reshape(b, c, -1), w).view(b, c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"gcnet: expected x[B, C, H, W], got {tuple(x.shape)}")
        ctx = self.context(x)
        out = x
        if self.channel_mul_conv is not None:
            out = out * torch.sigmoid(self.channel_mul_conv(ctx))
        if self.channel_add_conv is not None:
            out = out + self.channel_add_conv(ctx)
        return out


Reference = GlobalContext
