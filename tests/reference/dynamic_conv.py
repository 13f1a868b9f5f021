"""Dynamic convolution (DY-CNN), hand-written eager reference.

Paper: Yinpeng Chen, Xiyang Dai, Mengchen Liu, Dongdong Chen, Lu Yuan, Zicheng Liu,
"Dynamic Convolution: Attention over Convolution Kernels", CVPR 2020.
Official code: none released by the authors (the paper's implementation is not public);
every default below is from the paper's text.

K parallel kernels of the same shape, aggregated per sample by an SE-style attention:

    pi(x) = softmax( fc2( relu( fc1( GAP(x) ) ) ) / tau )        pi[B, K], sum_k pi_k = 1
    W~(x) = sum_k pi_k(x) W_k,    b~(x) = sum_k pi_k(x) b_k
    y     = conv(x; W~(x), b~(x))

Defaults (paper):
- num_kernels=4 (K=4), the paper's default number of kernels.
- reduction=4: the attention's first FC reduces the channel dimension by 4.
- temperature=30.0: the softmax temperature tau at the start of training; the paper
  anneals tau linearly from 30 to 1 over the first 10 epochs, so a trained model runs
  with tau=1. `temperature` is a plain attribute and can be changed between calls.
- kernel_size=3, stride=1, padding=kernel_size//2, dilation=1, groups=1, bias=True: the
  dynamic operator replaces an ordinary convolution, so these are that convolution's
  arguments (out_channels defaults to channels).

Ambiguities and choices:
- The paper does not say whether the attention FCs have biases; both keep nn.Linear's
  bias here.
- Hidden width is max(1, channels // reduction).
- Each of the K kernels (and biases) is initialised independently with nn.Conv2d's
  default scheme (the paper gives no initialisation); the attention FCs use nn.Linear
  defaults.
- In DY-CNN the dynamic convolution is followed by BN and an activation; those belong
  to the network, not to the operator, and are not included.
- Parameter order: the attention (`fc1`, `fc2`) first, since it is computed before the
  kernels are aggregated, then `weight` [K, C_out, C_in/groups, k, k] and `bias` [K, C_out].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DynamicConv(nn.Module):
    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        num_kernels: int = 4,
        reduction: int = 4,
        temperature: float = 30.0,
    ):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        if channels % groups or out_channels % groups:
            raise ValueError("channels and out_channels must be divisible by groups")
        self.channels = channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.dilation = dilation
        self.groups = groups
        self.num_kernels = num_kernels
        self.temperature = temperature
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, num_kernels)
        self.weight = nn.Parameter(torch.empty(num_kernels, out_channels, channels // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(num_kernels, out_channels)) if bias else None
        self.reset_kernels()

    def reset_kernels(self) -> None:
        fan_in = (self.channels // self.groups) * self.kernel_size**2
        for k in range(self.num_kernels):
            nn.init.kaiming_uniform_(self.weight[k], a=math.sqrt(5))
            if self.bias is not None:
                bound = 1 / math.sqrt(fan_in)
                nn.init.uniform_(self.bias[k], -bound, bound)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """pi[B, K], a softmax over the K kernels."""
        logits = self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3)))))
        return torch.softmax(logits / self.temperature, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        pi = self.attention(x)
        weight = torch.einsum("bk,koihw->boihw", pi, self.weight)
        bias = (pi @ self.bias).reshape(-1) if self.bias is not None else None
        # one grouped conv runs every sample with its own aggregated kernel
        out = F.conv2d(
            x.reshape(1, b * c, h, w),
            weight.reshape(b * self.out_channels, c // self.groups, self.kernel_size, self.kernel_size),
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=b * self.groups,
        )
        return out.view(b, self.out_channels, *out.shape[-2:])


Reference = DynamicConv
