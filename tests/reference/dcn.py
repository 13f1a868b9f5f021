"""Deformable convolution (v1, and v2 modulated), hand-written eager reference.

Papers: Jifeng Dai, Haozhi Qi, Yuwen Xiong, Yi Li, Guodong Zhang, Han Hu, Yichen Wei,
"Deformable Convolutional Networks", ICCV 2017 (v1); Xizhou Zhu, Han Hu, Stephen Lin,
Jifeng Dai, "Deformable ConvNets v2: More Deformable, Better Results", CVPR 2019 (v2,
modulation).
Official code: https://github.com/msracver/Deformable-ConvNets (MXNet, v1; the v2 operator
was published in MXNet contrib and in the authors' mmdetection/mmcv ports).

    y(p0) = sum_k w_k * m_k(p0) * x(p0 + p_k + dp_k(p0))        (+ bias)

p_k runs over the regular k x k grid (with stride, padding and dilation as a plain conv);
the offsets dp (and, in v2, the modulation m = sigmoid(.)) come from a plain conv
`conv_offset` over the same input with the same kernel, stride, padding and dilation.
x at a fractional location is bilinearly interpolated, and corners outside the map
contribute zero (the official im2col kernels' behaviour).

Defaults:
- kernel 3, stride 1, padding 1, dilation 1, groups 1: a 3x3 "same" conv.
- deform_groups = 1 (mmcv's default). The official R-FCN/Faster R-CNN res5 layers use
  4 deformable groups with dilation 2; pass them as keywords.
- bias=False: the official ResNet res5 deformable convs use no_bias=True.
- conv_offset (and the mask part in v2) is zero-initialised (weights and bias), so v1
  starts as the plain convolution and v2 as 0.5 x the plain convolution (sigmoid(0)).
- modulated=False (v1). modulated=True is v2: conv_offset emits 3 * dg * k * k channels,
  split in three equal chunks (o1, o2, m); the offset is cat(o1, o2) and the mask is
  sigmoid(m), as in the v2 ports.

Offset layout (same as MXNet/mmcv/torchvision): channel 2*(g*K + k) is the vertical
offset dy and 2*(g*K + k) + 1 the horizontal offset dx of kernel tap k (row-major over the
kernel) in deformable group g, in input pixels.

Implementation: plain PyTorch. Each tap is sampled with grid_sample (bilinear, zeros,
align_corners=False, with pixel p mapped to (2p + 1) / size - 1, so integer p lands on
pixel centres), then the taps are contracted with the weight. The main kernel is the
`conv.weight` [out, in/groups, k, k] (and `conv.bias`) of an nn.Conv2d registered after
conv_offset (PyTorch's default initialisation); only its parameters are used.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class DeformableConv2d(nn.Module):
    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = False,
        modulated: bool = False,
    ):
        super().__init__()
        out_channels = out_channels if out_channels is not None else channels
        if channels % groups or out_channels % groups or channels % deform_groups:
            raise ValueError("dcn: channels must be divisible by groups and deform_groups")
        self.channels = channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.deform_groups = deform_groups
        self.modulated = modulated
        taps = kernel_size * kernel_size
        self.conv_offset = nn.Conv2d(
            channels,
            (3 if modulated else 2) * deform_groups * taps,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=True,
        )
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)
        # Holds the main kernel (weight [out, in/groups, k, k], optional bias); it is never
        # called as a convolution, the deformable sampling below replaces its im2col.
        self.conv = nn.Conv2d(
            channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )

    def offsets_and_mask(self, x: torch.Tensor):
        """offset[B, 2*dg*K, Ho, Wo] and mask[B, dg*K, Ho, Wo] (None for v1)."""
        out = self.conv_offset(x)
        if not self.modulated:
            return out, None
        o1, o2, m = out.chunk(3, dim=1)
        return torch.cat([o1, o2], dim=1), torch.sigmoid(m)

    def sample(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Bilinearly sampled columns [B, C, K, Ho, Wo] at p0 + p_k + dp_k."""
        b, c, h, w = x.shape
        dg, k = self.deform_groups, self.kernel_size
        ho, wo = offset.shape[2:]
        taps = k * k
        off = offset.view(b, dg, taps, 2, ho, wo)
        base_y = (torch.arange(ho, dtype=x.dtype, device=x.device) * self.stride - self.padding).view(1, ho, 1)
        base_x = (torch.arange(wo, dtype=x.dtype, device=x.device) * self.stride - self.padding).view(1, 1, wo)
        ky = (torch.arange(k, dtype=x.dtype, device=x.device) * self.dilation).repeat_interleave(k)
        kx = (torch.arange(k, dtype=x.dtype, device=x.device) * self.dilation).repeat(k)
        py = base_y + ky.view(taps, 1, 1) + off[:, :, :, 0]  # [B, dg, K, Ho, Wo]
        px = base_x + kx.view(taps, 1, 1) + off[:, :, :, 1]
        grid = torch.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], dim=-1)
        grid = grid.view(b * dg, taps * ho, wo, 2)
        xg = x.reshape(b * dg, c // dg, h, w)
        cols = F.grid_sample(xg, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return cols.view(b, c, taps, ho, wo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"dcn: expected x[B, C, H, W], got {tuple(x.shape)}")
        offset, mask = self.offsets_and_mask(x)
        cols = self.sample(x, offset)  # [B, C, K, Ho, Wo]
        b, c, taps, ho, wo = cols.shape
        if mask is not None:
            dg = self.deform_groups
            cols = (cols.view(b, dg, c // dg, taps, ho, wo) * mask.view(b, dg, 1, taps, ho, wo)).view_as(cols)
        g = self.groups
        cols = cols.view(b, g, c // g, taps, ho, wo)
        wgt = self.conv.weight.view(g, self.out_channels // g, c // g, taps)
        out = torch.einsum("bgckhw,gock->bgohw", cols, wgt).reshape(b, self.out_channels, ho, wo)
        if self.conv.bias is not None:
            out = out + self.conv.bias.view(1, -1, 1, 1)
        return out


Reference = DeformableConv2d
