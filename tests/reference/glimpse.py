"""Glimpse network step of the deep recurrent attention model (DRAM), eager reference.

Paper: Jimmy Ba, Volodymyr Mnih, Koray Kavukcuoglu, "Multiple Object Recognition with
Visual Attention", ICLR 2015.
Official code: none released.

One step of the model's attention loop (the catalog's block). Inputs: image x[B, C, H, W],
the glimpse location l[B, 2] emitted at the previous step, and the recurrent state
h[B, 4, hidden_size] = (h1, c1, h2, c2), the hidden and cell states of the two stacked
LSTM layers r^(1) (recognition) and r^(2) (location). One step:

    rho   = glimpse_sensor(x, l)                        multi-resolution patches [B, k*C, g, g]
    G_img = relu(fc_image(flatten(relu(conv3(relu(conv2(relu(conv1(rho)))))))))
    G_loc = relu(fc_loc(l))
    g_n   = G_img * G_loc                               element-wise product (section 3.1)
    r1    = LSTM1(g_n, (h1, c1))                        (section 3.2)
    r2    = LSTM2(r1, (h2, c2))
    mu    = emission(r2)                                (section 3.3), l_{n+1} ~ N(mu, std^2)
    returns (rho, h_next[B, 4, hidden_size], l_next)

Glimpse sensor, coordinates and sampling: exactly as in `ram.py` (square patches of
g * s^i pixels around l = (x, y) in [-1, 1], bilinear reads at pixel spacing with zeros
outside, each patch averaged down to g x g, scales stacked on channels).

Defaults and choices (no official code; the paper's text fixes the structure, not all
sizes; the numbers below are this reference's choices unless stated):
- Structure from the paper: three convolutional layers and a fully connected layer for
  G_image, a fully connected layer for G_loc, multiplicative combination, two stacked
  LSTM layers, a linear emission network, Gaussian location policy with fixed std.
- glimpse_size = 8, num_scales = 2 (the catalog's "multi-resolution glimpse"),
  scale_factor = 2.
- conv_channels = (64, 64, 128), conv_kernels = (5, 3, 3), "same" padding, stride 1.
- hidden_size = features = 512 (the LSTM width and the glimpse feature width; the
  element-wise product needs G_img and G_loc of one width).
- loc_std = 0.11 (as in ram.py; the paper does not print the value).
- Eval mode emits the mean location; train mode samples with `generator`. The sample is
  returned without detaching; the paper trains the emission network with REINFORCE
  (detach l_next and use `location_mean`).
- The context network (initial state of r^(2) from a low-resolution image) and the
  classification network act once per sequence / on r^(1) and are outside this block.
- LSTM cells: torch.nn.LSTMCell (gates i, f, g, o; two bias vectors).
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
        gx = l[:, 0, None] + offs / w
        gy = l[:, 1, None] + offs / h
        grid = torch.stack([gx[:, None, :].expand(b, s, s), gy[:, :, None].expand(b, s, s)], dim=-1)
        patch = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if factor > 1:
            patch = F.avg_pool2d(patch, factor)
        patches.append(patch)
    return torch.cat(patches, dim=1)


class GlimpseNetworkStep(nn.Module):
    def __init__(
        self,
        channels: int,
        glimpse_size: int = 8,
        num_scales: int = 2,
        scale_factor: int = 2,
        conv_channels: tuple[int, int, int] = (64, 64, 128),
        conv_kernels: tuple[int, int, int] = (5, 3, 3),
        features: int = 512,
        hidden_size: int = 512,
        loc_std: float = 0.11,
    ):
        super().__init__()
        self.channels = channels
        self.glimpse_size = glimpse_size
        self.num_scales = num_scales
        self.scale_factor = scale_factor
        self.hidden_size = hidden_size
        self.loc_std = loc_std
        c1, c2, c3 = conv_channels
        k1, k2, k3 = conv_kernels
        self.conv1 = nn.Conv2d(num_scales * channels, c1, k1, padding=k1 // 2)
        self.conv2 = nn.Conv2d(c1, c2, k2, padding=k2 // 2)
        self.conv3 = nn.Conv2d(c2, c3, k3, padding=k3 // 2)
        self.fc_image = nn.Linear(c3 * glimpse_size**2, features)
        self.fc_loc = nn.Linear(2, features)
        self.lstm1 = nn.LSTMCell(features, hidden_size)
        self.lstm2 = nn.LSTMCell(hidden_size, hidden_size)
        self.emission = nn.Linear(hidden_size, 2)

    def glimpse(self, x: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        return glimpse_sensor(x, l, self.glimpse_size, self.num_scales, self.scale_factor)

    def features(self, rho: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
        """The glimpse feature vector g_n = G_image(rho) * G_loc(l), [B, features]."""
        t = torch.relu(self.conv1(rho))
        t = torch.relu(self.conv2(t))
        t = torch.relu(self.conv3(t))
        g_img = torch.relu(self.fc_image(t.flatten(1)))
        g_loc = torch.relu(self.fc_loc(l))
        return g_img * g_loc

    def location_mean(self, r2: torch.Tensor) -> torch.Tensor:
        return self.emission(r2)

    def forward(self, x: torch.Tensor, l: torch.Tensor, h: torch.Tensor, generator: torch.Generator | None = None):
        if x.dim() != 4 or l.shape != (x.shape[0], 2) or h.shape != (x.shape[0], 4, self.hidden_size):
            raise ValueError(
                f"glimpse: expected x[B, C, H, W], l[B, 2], h[B, 4, {self.hidden_size}], "
                f"got {tuple(x.shape)}, {tuple(l.shape)}, {tuple(h.shape)}"
            )
        rho = self.glimpse(x, l)
        g = self.features(rho, l)
        h1, c1 = self.lstm1(g, (h[:, 0], h[:, 1]))
        h2, c2 = self.lstm2(h1, (h[:, 2], h[:, 3]))
        mu = self.location_mean(h2)
        if self.training:
            eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
            l_next = mu + self.loc_std * eps
        else:
            l_next = mu
        return rho, torch.stack([h1, c1, h2, c2], dim=1), l_next


Reference = GlimpseNetworkStep
