"""Split-attention convolution (ResNeSt), hand-written eager reference.

Paper: Hang Zhang, Chongruo Wu, Zhongyue Zhang, Yi Zhu, Haibin Lin, Zhi Zhang, Yue Sun,
Tong He, Jonas Mueller, R. Manmatha, Mu Li, Alexander Smola, "ResNeSt: Split-Attention
Networks", arXiv:2004.08955, 2020 (CVPR Workshops 2022).
Official code: https://github.com/zhanghang1989/ResNeSt (resnest/torch/models/splat.py,
`SplAtConv2d`, and its use as conv2 of the ResNeSt Bottleneck).

With radix R, cardinality G, output channels C' = out_channels:
    U      = relu(BN0(conv(x)))                  grouped k x k conv, G·R groups, C'·R channels,
                                                 viewed as R splits U_r of C' channels each
    g      = GAP(Σ_r U_r)                        [B, C']
    z      = relu(BN1(fc1(g)))                   grouped (G) 1x1 conv, C' -> inter
    a      = r-softmax(fc2(z))                   grouped (G) 1x1 conv, inter -> C'·R;
                                                 softmax over the R splits within each
                                                 cardinal group (sigmoid when R = 1)
    y      = Σ_r a_r · U_r                       [B, C', H', W']

Defaults: those of the ResNeSt Bottleneck's split-attention conv (ResNeSt-50):
kernel_size=3, stride=1, padding=dilation (= 1), groups (cardinality)=1, radix=2,
reduction_factor=4, bias=False on the main conv, BatchNorm on (norm=True);
inter = max(in_channels · radix // reduction_factor, 32) (official); fc1 and fc2 have
biases (official Conv2d defaults); out_channels defaults to channels.

Layout: as in the official code, the main conv's output is radix-major (split r holds
channels [r·C', (r+1)·C')), each split ordered by cardinal group; fc2's output is
grouped by cardinal group first (its grouped conv), then radix, then channel, and the
r-softmax regroups it to radix-major before multiplying. The paper describes the
equivalent cardinal-major layout (each cardinal group holding its R splits); the official
code switched to radix-major for speed (see its test_radix_major.py). The reference
follows the code's layout so the parameters line up.

Variants not reproduced: rectified convolution (rectify=True) and DropBlock, both off in
the default ResNeSt-50. Only 2-D feature maps are supported. The BatchNorm over the 1x1
pooled map needs batch size > 1 in training mode.
"""

from __future__ import annotations

import torch
from torch import nn


class SplitAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        radix: int = 2,
        reduction_factor: int = 4,
        bias: bool = False,
        norm: bool = True,
    ):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        padding = dilation * (kernel_size // 2) if padding is None else padding
        inter = max(channels * radix // reduction_factor, 32)
        self.channels = channels
        self.out_channels = out_channels
        self.radix = radix
        self.cardinality = groups
        self.norm = norm
        self.conv = nn.Conv2d(
            channels, out_channels * radix, kernel_size, stride, padding, dilation, groups=groups * radix, bias=bias
        )
        self.bn0 = nn.BatchNorm2d(out_channels * radix) if norm else None
        self.fc1 = nn.Conv2d(out_channels, inter, kernel_size=1, groups=groups)
        self.bn1 = nn.BatchNorm2d(inter) if norm else None
        self.fc2 = nn.Conv2d(inter, out_channels * radix, kernel_size=1, groups=groups)

    def splits(self, x: torch.Tensor) -> torch.Tensor:
        """U[B, R, C', H', W']."""
        u = self.conv(x)
        if self.bn0 is not None:
            u = self.bn0(u)
        u = torch.relu(u)
        return u.unflatten(1, (self.radix, self.out_channels))

    def attention(self, u: torch.Tensor) -> torch.Tensor:
        """a[B, R, C']: weights over the splits (softmax over R, or sigmoid when R = 1)."""
        g = u.sum(dim=1).mean(dim=(2, 3), keepdim=True)
        z = self.fc1(g)
        if self.bn1 is not None:
            z = self.bn1(z)
        logits = self.fc2(torch.relu(z)).flatten(1)  # [B, G·R·(C'/G)], cardinal-major
        b = logits.shape[0]
        logits = logits.view(b, self.cardinality, self.radix, -1).transpose(1, 2)
        if self.radix > 1:
            weights = torch.softmax(logits, dim=1)
        else:
            weights = torch.sigmoid(logits)
        return weights.reshape(b, self.radix, self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.splits(x)
        a = self.attention(u)
        return (a[..., None, None] * u).sum(dim=1)


Reference = SplitAttention
