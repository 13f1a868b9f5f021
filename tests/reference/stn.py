"""Spatial transformer (affine, bilinear sampler), hand-written eager reference.

Paper: Max Jaderberg, Karen Simonyan, Andrew Zisserman, Koray Kavukcuoglu, "Spatial
Transformer Networks", NeurIPS (NIPS) 2015.
Official code: none released by the authors. Reference practice read for facts: the
PyTorch "Spatial Transformer Networks Tutorial" (pytorch/tutorials,
intermediate_source/spatial_transformer_tutorial.py) and the Torch stnbhwd modules.

    theta = fc2(relu(fc1(GAP(loc(x)))))  reshaped to [B, 2, 3]
    grid  = affine_grid(theta)           target pixel (x_t, y_t) -> source (x_s, y_s)
    out   = bilinear_sample(x, grid)     zeros outside the input

A generic feature-map block, as the catalog asks: the localisation network is small and
works on any H, W and any channel count:

    loc_conv1: Conv2d(C, 8, 7, padding=3) -> ReLU
    loc_conv2: Conv2d(8, 10, 5, padding=2) -> ReLU
    global average pool -> fc1: Linear(10, 32) -> ReLU -> fc2: Linear(32, 6)

Defaults and where they come from:
- Widths 8 and 10, kernels 7 and 5, hidden 32: the PyTorch tutorial's localisation net.
  The tutorial flattens a fixed 10x3x3 map (MNIST only) and has max-pools between the
  convolutions; this block replaces both by "same" padding and a global average pool so
  that it accepts any spatial size (the catalog's "generic feature-map block").
- fc2 is identity-initialised (weight 0, bias [1, 0, 0, 0, 1, 0]): the paper's advice
  and the tutorial's code, so the block starts as the identity map.
- Output size = input size (the paper lets it differ; the catalog block keeps it).
- align_corners=False: the normalised coordinates -1 and +1 denote the outer *edges* of
  the border pixels. This is what the PyTorch tutorial computes on any PyTorch >= 1.3
  (it calls affine_grid/grid_sample without the argument, whose default became False),
  and PyTorch's default. The paper only says "normalised coordinates in [-1, 1]";
  Torch's stnbhwd (and PyTorch < 1.3) used the align_corners=True convention (-1/+1 are
  the centres of the border pixels). Either gives the identity at theta = identity;
  they differ for every other theta. Pass align_corners=True for the older convention.
- padding_mode="zeros": the paper's sampler sums over input pixels only (zero outside).

theta's layout is PyTorch's: row 0 maps to x_s (width), row 1 to y_s (height), columns
(x_t, y_t, 1), as in the paper's equation (1) with (x, y) ordering.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SpatialTransformer(nn.Module):
    def __init__(
        self,
        channels: int,
        loc_channels: tuple[int, int] = (8, 10),
        loc_kernels: tuple[int, int] = (7, 5),
        fc_hidden: int = 32,
        align_corners: bool = False,
        padding_mode: str = "zeros",
    ):
        super().__init__()
        c1, c2 = loc_channels
        k1, k2 = loc_kernels
        self.channels = channels
        self.align_corners = align_corners
        self.padding_mode = padding_mode
        self.loc_conv1 = nn.Conv2d(channels, c1, k1, padding=k1 // 2)
        self.loc_conv2 = nn.Conv2d(c1, c2, k2, padding=k2 // 2)
        self.fc1 = nn.Linear(c2, fc_hidden)
        self.fc2 = nn.Linear(fc_hidden, 6)
        nn.init.zeros_(self.fc2.weight)
        with torch.no_grad():
            self.fc2.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The affine matrices theta[B, 2, 3] predicted by the localisation network."""
        h = torch.relu(self.loc_conv1(x))
        h = torch.relu(self.loc_conv2(h))
        h = h.mean(dim=(2, 3))
        return self.fc2(torch.relu(self.fc1(h))).view(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"stn: expected x[B, C, H, W], got {tuple(x.shape)}")
        theta = self.theta(x)
        grid = F.affine_grid(theta, list(x.shape), align_corners=self.align_corners)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=self.align_corners)


Reference = SpatialTransformer
