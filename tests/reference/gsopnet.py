"""GSoP block (global second-order pooling, channel attention), eager reference.

Paper: Zilin Gao, Jiangtao Xie, Qilong Wang, Peihua Li, "Global Second-order Pooling
Convolutional Networks", CVPR 2019.
Official code: https://github.com/ZilinGao/Global-Second-order-Pooling-Convolutional-Networks
(the channel-attention path `chan_att` of its Bottleneck, attention mode '1', which the
code calls "GSoP default mode").

    z   = relu(BN(conv1x1(relu(x))))            C -> d channels   (d = att_dim)
    Σ   = (1/M) Σ_p (z_p - μ)(z_p - μ)ᵀ          d x d covariance over the M positions
    r   = row_conv(row_BN(Σ))                   row i of Σ -> 4 outputs, a d x 1 kernel per row
    s   = sigmoid(fc(r))                        4d -> C
    y   = x · s                                 (per channel, on the block input x)

Defaults (official code):
- att_dim=128: the `att_dim` default of the official resnet50/101 constructors (the
  paper's c' = 128).
- pre_relu=True: the official block feeds relu(x) (a non-inplace ReLU of the bottleneck's
  pre-activation output) to the reduction conv while rescaling the un-rectified x.
- reduce_stride=1: the official code uses stride 2 for the reduction conv in the first
  stage (planes <= 64, i.e. C = 256) and 1 elsewhere; exposed as a keyword.
- The reduction conv has a bias, as do the row-wise conv and the final fc (all official).
- Covariance: centred, normalised by M (not M-1), as the official CovpoolLayer
  (x Î xᵀ with Î = (1/M)(I - 11ᵀ/M)).
- Row-wise convolution: a grouped conv with d groups, kernel (d, 1), 4 outputs per row
  (4d channels) as in the official code; row normalisation is a BatchNorm2d over the d
  rows of the [B, d, d, 1] covariance tensor.

Paper vs code (unverified): secondary summaries of the paper describe a non-linear
activation between the row-wise convolution and the final fc layer; the official channel
path has none (its spatial-attention path does use a ReLU there). The paper text itself
was not available to check; this reference follows the official code. The survey's
formula sigma(W RC(Cov(Conv(X)))) also has no activation there.
Only 2-D feature maps are supported (the block uses Conv2d and BatchNorm2d throughout,
and the optional stride-2 reduction is 2-D).
"""

from __future__ import annotations

import torch
from torch import nn


class GSoP(nn.Module):
    def __init__(self, channels: int, att_dim: int = 128, reduce_stride: int = 1, pre_relu: bool = True):
        super().__init__()
        d = att_dim
        self.channels = channels
        self.att_dim = d
        self.pre_relu = pre_relu
        self.reduce_conv = nn.Conv2d(channels, d, kernel_size=1, stride=reduce_stride, bias=True)
        self.reduce_bn = nn.BatchNorm2d(d)
        self.row_bn = nn.BatchNorm2d(d)
        self.row_conv = nn.Conv2d(d, 4 * d, kernel_size=(d, 1), groups=d, bias=True)
        self.fc = nn.Conv2d(4 * d, channels, kernel_size=1, bias=True)

    @staticmethod
    def covariance(z: torch.Tensor) -> torch.Tensor:
        """Centred covariance over spatial positions, normalised by their count: [B, d, d]."""
        b, d = z.shape[:2]
        flat = z.reshape(b, d, -1)
        centred = flat - flat.mean(dim=2, keepdim=True)
        return centred @ centred.transpose(1, 2) / flat.shape[2]

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The channel attention vector s[B, C]."""
        z = torch.relu(x) if self.pre_relu else x
        z = torch.relu(self.reduce_bn(self.reduce_conv(z)))
        cov = self.covariance(z).unsqueeze(-1)  # [B, d, d, 1]: row i is channel i of the BN
        r = self.row_conv(self.row_bn(cov))  # [B, 4d, 1, 1]
        return torch.sigmoid(self.fc(r)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(x)
        return x * s[:, :, None, None]


Reference = GSoP
