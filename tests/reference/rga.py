"""RGA: relation-aware global attention, spatial (RGA-S) then channel (RGA-C).

Paper: Zhizheng Zhang, Cuiling Lan, Wenjun Zeng, Xin Jin, Zhibo Chen,
"Relation-Aware Global Attention for Person Re-identification", CVPR 2020.
Official code: microsoft/Relation-Aware-Global-Attention-Networks
(`reid/models/models_utils/rga_modules.py`, RGA_Module).

Shapes: x[B, C, H, W] -> [B, C, H, W]. The relation features of RGA-S have one
channel per spatial position, so the module is built for one spatial size:
`spatial_size` is (H, W) or N = H*W, as in the official RGA_Module(in_channel,
in_spatial).

Every embedding below is a 1x1 conv (no bias) + BatchNorm + ReLU ("cbr").
RGA-S, nodes = the N positions, features = C-vectors:
  r = theta_s(x)^T phi_s(x)                  r[i, j], [N, N]   (C -> C/cha_ratio)
  relation feature of node i: [r[i, :], r[:, i]]  (2N values) -> gg_s (2N -> N/spa_ratio)
  y_i = [mean_c gx_s(x)_i, gg_s(...)_i]       (gx_s: C -> C/cha_ratio, then channel mean)
  a_i = sigmoid(W_s(y_i)), W_s = conv(1+N/s -> (1+N/s)/d) BN ReLU conv(-> 1) BN
  x <- x * a                                  (a broadcast over channels)
RGA-C is the same construction with the roles of channels and positions
swapped (nodes = the C channels, features = N-vectors; theta_c, phi_c, gx_c:
N -> N/spa_ratio; gg_c: 2C -> C/cha_ratio; W_c on 1 + C/cha_ratio), applied to
the output of RGA-S; its attention is broadcast over positions.

Defaults: cha_ratio = spa_ratio = down_ratio = 8, use_spatial = use_channel = True
(official RGA_Module defaults and the RGA-SC model of the paper, spatial then
channel in sequence, the paper's best). Initialisation: PyTorch defaults (the
official model does not re-initialise the RGA modules). The official model
inserts RGA after each ResNet-50 stage with height=256, width=128 inputs, i.e.
256 channels at 64 x 32.

Variants: use_spatial / use_channel (RGA-S, RGA-C, RGA-SC).

Paper vs code: the paper writes the attention as a = sigmoid(W2 ReLU(W1 y));
the code puts a BatchNorm after each of W1 and W2 (followed here). The order of
the two halves of the relation vector (outgoing r[i, :] first, then incoming
r[:, i]) follows the code's concatenation (Gs_in, Gs_out).
"""

from __future__ import annotations

import torch
from torch import nn


def _cbr(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def _attention_mlp(cin: int, down_ratio: int) -> nn.Sequential:
    mid = cin // down_ratio
    if mid < 1:
        raise ValueError(f"RGA: ({cin}) // down_ratio ({down_ratio}) is 0; use a smaller down_ratio")
    return nn.Sequential(
        nn.Conv2d(cin, mid, 1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(),
        nn.Conv2d(mid, 1, 1, bias=False),
        nn.BatchNorm2d(1),
    )


class RGA(nn.Module):
    def __init__(
        self,
        channels: int,
        spatial_size,
        use_spatial: bool = True,
        use_channel: bool = True,
        cha_ratio: int = 8,
        spa_ratio: int = 8,
        down_ratio: int = 8,
    ):
        super().__init__()
        n = spatial_size if isinstance(spatial_size, int) else int(spatial_size[0]) * int(spatial_size[1])
        self.channels = channels
        self.spatial = n
        self.use_spatial = use_spatial
        self.use_channel = use_channel
        self.inter_channel = channels // cha_ratio
        self.inter_spatial = n // spa_ratio
        if self.inter_channel < 1 or self.inter_spatial < 1:
            raise ValueError(
                f"RGA: channels // cha_ratio = {self.inter_channel} and "
                f"spatial // spa_ratio = {self.inter_spatial} must be >= 1"
            )
        ic, isp = self.inter_channel, self.inter_spatial
        # registered in data-flow order: RGA-S (relation, original, attention), then RGA-C
        if use_spatial:
            self.theta_spatial = _cbr(channels, ic)
            self.phi_spatial = _cbr(channels, ic)
            self.gg_spatial = _cbr(2 * n, isp)
            self.gx_spatial = _cbr(channels, ic)
            self.W_spatial = _attention_mlp(1 + isp, down_ratio)
        if use_channel:
            self.theta_channel = _cbr(n, isp)
            self.phi_channel = _cbr(n, isp)
            self.gg_channel = _cbr(2 * channels, ic)
            self.gx_channel = _cbr(n, isp)
            self.W_channel = _attention_mlp(1 + ic, down_ratio)

    def spatial_attention(self, x: torch.Tensor) -> torch.Tensor:
        """a[B, 1, H, W] in (0, 1)."""
        b, _, h, w = x.shape
        theta = self.theta_spatial(x).flatten(2)  # [B, C', N]
        phi = self.phi_spatial(x).flatten(2)
        r = theta.transpose(1, 2) @ phi  # r[i, j]
        # channel j of the relation map at position i: r[i, j] (first half), r[j, i] (second)
        rel = torch.cat((r.transpose(1, 2), r), dim=1).reshape(b, 2 * h * w, h, w)
        g = self.gx_spatial(x).mean(dim=1, keepdim=True)
        y = torch.cat((g, self.gg_spatial(rel)), dim=1)
        return torch.sigmoid(self.W_spatial(y))

    def channel_attention(self, x: torch.Tensor) -> torch.Tensor:
        """a[B, C, 1, 1] in (0, 1)."""
        b, c = x.shape[:2]
        xc = x.flatten(2).transpose(1, 2).unsqueeze(-1)  # [B, N, C, 1]: positions as channels
        theta = self.theta_channel(xc).squeeze(-1)  # [B, N', C]
        phi = self.phi_channel(xc).squeeze(-1)
        r = theta.transpose(1, 2) @ phi  # [B, C, C]
        rel = torch.cat((r.transpose(1, 2), r), dim=1).unsqueeze(-1)  # [B, 2C, C, 1]
        g = self.gx_channel(xc).mean(dim=1, keepdim=True)  # [B, 1, C, 1]
        y = torch.cat((g, self.gg_channel(rel)), dim=1)
        return torch.sigmoid(self.W_channel(y)).reshape(b, c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.channels or x.shape[2] * x.shape[3] != self.spatial:
            raise ValueError(f"RGA built for C={self.channels}, H*W={self.spatial}; got {tuple(x.shape)}")
        if self.use_spatial:
            x = x * self.spatial_attention(x)
        if self.use_channel:
            x = x * self.channel_attention(x)
        return x


Reference = RGA
