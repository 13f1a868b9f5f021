"""Additive attention gate of Attention U-Net, hand-written eager reference.

Paper: Ozan Oktay, Jo Schlemper, Loic Le Folgoc, Matthew Lee, Mattias Heinrich, Kazunari
Misawa, Kensaku Mori, Steven McDonagh, Nils Y. Hammerla, Bernhard Kainz, Ben Glocker,
Daniel Rueckert, "Attention U-Net: Learning Where to Look for the Pancreas", MIDL 2018.
Official code: https://github.com/ozan-oktay/Attention-Gated-Networks
(`models/layers/grid_attention_layer.py`, class `_GridAttentionBlockND`, mode
"concatenation").

Inputs: x[B, C, *S] (skip features), g[B, C_g, *S_g] (gating signal, usually coarser).

    q     = theta(x)                      strided conv, kernel = stride = sub_sample_factor, no bias
    f     = relu(q + up(phi(g), size(q)))  phi: 1x1 conv with bias
    alpha = up(sigmoid(psi(f)), size(x))  psi: 1x1 conv to one channel, with bias
    y     = alpha * x                      (broadcast over channels)
    out   = BN(W y)                        W: 1x1 conv with bias (the official "output transform")

Defaults (official code):
- inter_channels = channels // 2 (floor 1); gating_channels defaults to `channels` here
  (the official class requires it; Attention U-Net gates with the coarser level).
- sub_sample_factor = 2 (official default (2, 2, 2)): theta is a 2x2 (2x2x2) conv with
  stride 2 and no bias.
- output_transform=True: the official block returns W_y = BN(Conv1x1(alpha * x)).
- dims=2 (the catalog's x[B, C, H, W]); dims=3 gives the official 3-D block.

Variants: output_transform=False returns the paper's gated features x_hat = alpha * x;
dims 2 or 3; return_attention=True returns (out, alpha) like the official forward.

Paper vs code:
- The paper (eq. 1-2) writes W_x as a 1x1x1 linear map on x and resamples only alpha;
  the official code instead downsamples x with the strided theta conv (so the additive
  attention is computed at the gating resolution) and adds the W + BN output transform.
  This reference follows the official code; sub_sample_factor=1 with
  output_transform=False recovers the paper's equations.
- Resampling: the official code calls F.upsample(mode="bilinear"/"trilinear") without
  align_corners. It was written for PyTorch 0.3, whose bilinear upsampling behaved like
  align_corners=True; modern PyTorch's default is align_corners=False. Default here is
  align_corners=False (what the official code computes on any current PyTorch); both are
  exposed.
- Initialisation: the official code applies Kaiming-normal (fan_in) to the convolutions
  and N(1, 0.02) to the BN weight; none of the block's identities depend on it, so this
  reference keeps PyTorch's default initialisation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class AttentionGate(nn.Module):
    def __init__(
        self,
        channels: int,
        gating_channels: int | None = None,
        inter_channels: int | None = None,
        sub_sample_factor: int = 2,
        output_transform: bool = True,
        dims: int = 2,
        align_corners: bool = False,
        return_attention: bool = False,
    ):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"attention_gate: dims must be 2 or 3, got {dims}")
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        gating_channels = gating_channels if gating_channels is not None else channels
        inter = inter_channels if inter_channels is not None else max(1, channels // 2)
        self.channels = channels
        self.dims = dims
        self.mode = "bilinear" if dims == 2 else "trilinear"
        self.align_corners = align_corners
        self.return_attention = return_attention
        self.theta = conv(channels, inter, sub_sample_factor, stride=sub_sample_factor, bias=False)
        self.phi = conv(gating_channels, inter, 1)
        self.psi = conv(inter, 1, 1)
        if output_transform:
            self.W = conv(channels, channels, 1)
            self.bn = bn(channels)
        else:
            self.W = None
            self.bn = None

    def _resize(self, t: torch.Tensor, size) -> torch.Tensor:
        if tuple(t.shape[2:]) == tuple(size):
            return t
        return F.interpolate(t, size=size, mode=self.mode, align_corners=self.align_corners)

    def attention(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The gating coefficients alpha[B, 1, *S], in (0, 1), at x's resolution."""
        q = self.theta(x)
        f = torch.relu(q + self._resize(self.phi(g), q.shape[2:]))
        return self._resize(torch.sigmoid(self.psi(f)), x.shape[2:])

    def forward(self, x: torch.Tensor, g: torch.Tensor):
        if x.dim() != self.dims + 2 or g.dim() != self.dims + 2:
            raise ValueError(f"attention_gate: expected {self.dims}-D maps, got x {tuple(x.shape)}, g {tuple(g.shape)}")
        alpha = self.attention(x, g)
        y = alpha * x
        if self.W is not None:
            y = self.bn(self.W(y))
        return (y, alpha) if self.return_attention else y


Reference = AttentionGate
