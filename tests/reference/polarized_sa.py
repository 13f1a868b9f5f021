"""Polarized self-attention (PSA), hand-written eager reference.

Paper: Huajun Liu, Fuqiang Liu, Xinyi Fan, Dong Huang, "Polarized Self-Attention: Towards
High-quality Pixel-wise Regression", arXiv 2107.00782, 2021 (Neurocomputing 2022).
Official code: https://github.com/DeLightCMU/PSA (semantic-segmentation/network/PSA.py,
classes PSA_p and PSA_s).

Two branches on X [B, C, H, W], with C/2 internal channels, every projection a 1x1 conv
without bias:

    channel-only:  q = softmax_HW(W_q X)                   W_q: C -> 1
                   z = W_v X . q                           W_v: C -> C/2, summed over HW: [C/2]
                   A_ch = sigmoid( LN( W_z z ) )            W_z: C/2 -> C, LN over the C channels
    spatial-only:  g = softmax_C(GAP(W_q' X))              W_q': C -> C/2, [C/2]
                   A_sp = sigmoid( g . W_v' X )            W_v': C -> C/2, summed over C/2: [H, W]

    parallel:      Z = A_ch(X) * X + A_sp(X) * X
    sequential:    Y = A_ch(X) * X,  Z = A_sp(Y) * Y

Defaults: the paper's equations (3)-(6) for both layouts. The official code departs from
them in two places, differently for each layout; both are parameters here:
- `ch_transform`: "layernorm" (paper: W_z then LayerNorm over [C]), "none" (PSA_p:
  W_z alone), "bottleneck" (PSA_s: conv C/2 -> C/2/ratio with bias, LayerNorm over
  [C/2/ratio], ReLU, conv -> C with bias; ratio 4).
- `sp_softmax`: where the spatial branch's softmax sits. "query" (paper: over the C/2
  pooled query entries), "logits" (PSA_p: over the H x W products g . W_v' X, g not
  normalised), "value" (PSA_s: each channel of W_v' X over H x W, g not normalised).
The official PSA_p is (parallel, none, logits), PSA_s is (sequential, bottleneck, value).

Choices: W_z is stored as a linear [C, C/2] (official 1x1 conv [C, C/2, 1, 1]); the
bottleneck's LayerNorm is stored over [C/2/ratio] (official [C/2/ratio, 1, 1]: the same
numbers). LayerNorm eps 1e-5 (PyTorch default, as the code). The official code inits the
q/v convs with Kaiming normal (fan_in); this reference keeps PyTorch's default init (the
tests randomise every weight). inplanes = planes = C, the form in which the block keeps
its input shape (x * mask needs it).
"""

from __future__ import annotations

import torch
from torch import nn

LAYOUTS = ("parallel", "sequential")
CH_TRANSFORMS = ("layernorm", "none", "bottleneck")
SP_SOFTMAX = ("query", "logits", "value")


class PolarizedSelfAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        layout: str = "parallel",
        ch_transform: str = "layernorm",
        sp_softmax: str = "query",
        ratio: int = 4,
    ):
        super().__init__()
        if layout not in LAYOUTS or ch_transform not in CH_TRANSFORMS or sp_softmax not in SP_SOFTMAX:
            raise ValueError(f"bad variant: {layout}, {ch_transform}, {sp_softmax}")
        inter = channels // 2
        self.layout, self.ch_transform, self.sp_softmax = layout, ch_transform, sp_softmax
        # channel-only branch
        self.ch_q = nn.Conv2d(channels, 1, 1, bias=False)
        self.ch_v = nn.Conv2d(channels, inter, 1, bias=False)
        if ch_transform == "bottleneck":
            hidden = inter // ratio
            self.up1 = nn.Conv2d(inter, hidden, 1)
            self.up_ln = nn.LayerNorm([hidden, 1, 1])
            self.up2 = nn.Conv2d(hidden, channels, 1)
        else:
            self.ch_z = nn.Conv2d(inter, channels, 1, bias=False)
            if ch_transform == "layernorm":
                self.ch_ln = nn.LayerNorm([channels, 1, 1])
        # spatial-only branch
        self.sp_q = nn.Conv2d(channels, inter, 1, bias=False)
        self.sp_v = nn.Conv2d(channels, inter, 1, bias=False)

    def channel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """A_ch [B, C, 1, 1]."""
        b = x.shape[0]
        q = torch.softmax(self.ch_q(x).reshape(b, 1, -1), dim=2)  # [B, 1, HW]
        v = self.ch_v(x).reshape(b, self.ch_v.out_channels, -1)  # [B, C/2, HW]
        z = torch.matmul(v, q.transpose(1, 2)).unsqueeze(-1)  # [B, C/2, 1, 1]
        if self.ch_transform == "bottleneck":
            z = self.up2(torch.relu(self.up_ln(self.up1(z))))
        else:
            z = self.ch_z(z)
            if self.ch_transform == "layernorm":
                z = self.ch_ln(z)
        return torch.sigmoid(z)

    def spatial_attention(self, x: torch.Tensor) -> torch.Tensor:
        """A_sp [B, 1, H, W]."""
        b, _, h, w = x.shape
        g = self.sp_q(x).mean(dim=(2, 3)).unsqueeze(1)  # [B, 1, C/2]
        v = self.sp_v(x).reshape(b, self.sp_v.out_channels, h * w)  # [B, C/2, HW]
        if self.sp_softmax == "query":
            g = torch.softmax(g, dim=2)
        elif self.sp_softmax == "value":
            v = torch.softmax(v, dim=2)
        a = torch.matmul(g, v)  # [B, 1, HW]
        if self.sp_softmax == "logits":
            a = torch.softmax(a, dim=2)
        return torch.sigmoid(a.reshape(b, 1, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "parallel":
            return x * self.channel_attention(x) + x * self.spatial_attention(x)
        y = x * self.channel_attention(x)
        return y * self.spatial_attention(y)


Reference = PolarizedSelfAttention
