"""Recurrent attention model (RAM) step, hand-written eager reference.

Paper: Volodymyr Mnih, Nicolas Heess, Alex Graves, Koray Kavukcuoglu, "Recurrent Models
of Visual Attention", NeurIPS (NIPS) 2014.
Official code: none released.

The paper's network is a whole recurrent classifier; the catalog's block is one step of
its attention loop. Inputs: the image x[B, C, H, W], the location l[B, 2] chosen at the
previous step, and the previous core state h[B, hidden_size]. One step:

    rho   = glimpse_sensor(x, l)                      k patches around l, [B, k*C, g, g]
    h_g   = relu(fc_glimpse(flatten(rho)))            (section 4.1)
    h_l   = relu(fc_loc(l))
    g_t   = relu(fc_what(h_g) + fc_where(h_l))
    h_t   = relu(core_g(g_t) + core_h(h))             rectifier RNN core (classification)
    mu    = locator(h_t)                              f_l(h) = Linear(h)
    l_t   = mu + loc_std * eps,  eps ~ N(0, I)        train mode, drawn from `generator`
    l_t   = mu                                        eval mode
    returns (rho, h_t, l_t)

Glimpse sensor: patch i (i = 0..k-1) covers g * s^i x g * s^i input pixels centred at l
and is resized to g x g by averaging s^i x s^i blocks (the paper: "k square patches,
the first gw x gw pixels, each successive patch twice the width of the previous ... all
resized to gw x gw"). The patch is read with bilinear interpolation at pixel spacing
(zeros outside the image), so a location between pixels is handled smoothly; at a
location whose patch falls on pixel centres this is an exact crop.
Coordinates: l = (x, y) in [-1, 1], (-1, -1) the top-left image corner and (1, 1) the
bottom-right one (the paper's convention; the corners are the outer pixel edges, i.e.
PyTorch's align_corners=False), so the patch centre in pixels is ((l + 1) * size - 1) / 2.

Defaults (from the paper unless stated):
- glimpse_size g = 8, num_scales k = 1 (the 28x28 MNIST models; translated MNIST used
  12x12 with 3 scales), scale_factor s = 2.
- glimpse_hidden = loc_hidden = 128 and glimpse_features = 256 (section 4.1: "the
  dimensionality of h_g and h_l was 128 while the dimensionality of g was 256").
- hidden_size = 256 (the core of the classification models).
- loc_std = 0.11: the paper fixes the policy's standard deviation but does not print
  it; 0.11 is the value of the Torch RAM reimplementation (locatorStd). A choice.
- Every Linear has a bias ("Linear(x) = Wx + b").
Choices: the location is not clamped and has no tanh (paper: f_l(h) = Linear(h)); the
sample is returned without detaching (a pathwise gradient reaches the locator). The
paper trains the locator with REINFORCE: detach l_t and use `location_mean(h_t)` for the
log-likelihood of the Gaussian policy. The LSTM core of the paper's dynamic-environment
experiments is not included.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def glimpse_sensor(x: torch.Tensor, l: torch.Tensor, size: int, num_scales: int, scale_factor: int) -> torch.Tensor:
    """Multi-resolution square patches around l, stacked on channels: [B, k*C, g, g]."""
    b, c, h, w = x.shape
    patches = []
    for i in range(num_scales):
        factor = scale_factor**i
        s = size * factor
        offs = torch.arange(s, dtype=x.dtype, device=x.device) * 2 - (s - 1)
        gx = l[:, 0, None] + offs / w  # [B, s]
        gy = l[:, 1, None] + offs / h
        grid = torch.stack([gx[:, None, :].expand(b, s, s), gy[:, :, None].expand(b, s, s)], dim=-1)
        patch = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if factor > 1:
            patch = F.avg_pool2d(patch, factor)
        patches.append(patch)
    return torch.cat(patches, dim=1)


class RecurrentAttentionStep(nn.Module):
    def __init__(
        self,
        channels: int,
        glimpse_size: int = 8,
        num_scales: int = 1,
        scale_factor: int = 2,
        glimpse_hidden: int = 128,
        loc_hidden: int = 128,
        glimpse_features: int = 256,
        hidden_size: int = 256,
        loc_std: float = 0.11,
    ):
        super().__init__()
        self.channels = channels
        self.glimpse_size = glimpse_size
        self.num_scales = num_scales
        self.scale_factor = scale_factor
        self.hidden_size = hidden_size
        self.loc_std = loc_std
        self.fc_glimpse = nn.Linear(num_scales * channels * glimpse_size**2, glimpse_hidden)
        self.fc_loc = nn.Linear(2, loc_hidden)
        self.fc_what = nn.Linear(glimpse_hidden, glimpse_features)
        self.fc_where = nn.Linear(loc_hidden, glimpse_features)
        self.core_g = nn.Linear(glimpse_features, hidden_size)
        self.core_h = nn.Linear(hidden_size, hidden_size)
        self.locator = nn.Linear(hidden_size, 2)

    def glimpse(self, x: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        return glimpse_sensor(x, l, self.glimpse_size, self.num_scales, self.scale_factor)

    def location_mean(self, h: torch.Tensor) -> torch.Tensor:
        return self.locator(h)

    def forward(self, x: torch.Tensor, l: torch.Tensor, h: torch.Tensor, generator: torch.Generator | None = None):
        if x.dim() != 4 or l.shape != (x.shape[0], 2) or h.shape != (x.shape[0], self.hidden_size):
            raise ValueError(
                f"ram: expected x[B, C, H, W], l[B, 2], h[B, {self.hidden_size}], "
                f"got {tuple(x.shape)}, {tuple(l.shape)}, {tuple(h.shape)}"
            )
        rho = self.glimpse(x, l)
        h_g = torch.relu(self.fc_glimpse(rho.flatten(1)))
        h_l = torch.relu(self.fc_loc(l))
        g = torch.relu(self.fc_what(h_g) + self.fc_where(h_l))
        h_next = torch.relu(self.core_g(g) + self.core_h(h))
        mu = self.location_mean(h_next)
        if self.training:
            eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
            l_next = mu + self.loc_std * eps
        else:
            l_next = mu
        return rho, h_next, l_next


Reference = RecurrentAttentionStep
