"""Conditionally parameterised convolution (CondConv), hand-written eager reference.

Paper: Brandon Yang, Gabriel Bender, Quoc V. Le, Jiquan Ngiam, "CondConv: Conditionally
Parameterized Convolutions for Efficient Inference", NeurIPS 2019.
Official code: https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/condconv
(`CondConv2D` in condconv_layers.py; the routing function in efficientnet_model.py's MBConvBlock).

    α = sigmoid(R · GAP(x) + r)                          routing weights [B, E], one per expert
    W(x) = Σ_e α_e W_e          (b(x) = Σ_e α_e b_e when bias=True)
    y = W(x) * x                                          per-example convolution

Defaults:
- num_experts=8: the paper's main CondConv-EfficientNet-B0 setting (the official model
  builder also defines 4-expert variants).
- kernel_size=3, stride=1, 'same' zero padding (dilation · (k // 2)), groups=1
  (groups=channels gives the official DepthwiseCondConv2D), out_channels = channels.
- bias=False: every CondConv in the official EfficientNet builds has use_bias=False; with
  bias=True each expert has its own bias, mixed like the kernels (official CondConv2D).
- Routing: a dense layer with bias and sigmoid on the globally average-pooled block input
  (official `_routing_fn`), Glorot-uniform weights and zero bias (Keras Dense defaults).
- Expert kernels: each expert initialised independently with the EfficientNet conv
  initialiser, normal(0, sqrt(2 / fan_out)), fan_out = k·k·out_channels.
- The layer applies no activation (σ in the paper's Output(x) = σ(W(x) * x) is the
  following layer's activation).

Choices: in the official EfficientNet the routing weights of one block are shared by all
the block's CondConv layers; this reference is a single layer that computes its own
routing from its own input. TF 'same' padding is asymmetric for even sizes with stride 2;
the reference pads symmetrically (identical for stride 1). Only 2-D feature maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CondConv(nn.Module):
    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        num_experts: int = 8,
        bias: bool = False,
    ):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        self.channels = channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = dilation * (kernel_size // 2) if padding is None else padding
        self.dilation = dilation
        self.groups = groups
        self.num_experts = num_experts
        self.routing = nn.Linear(channels, num_experts)
        self.weight = nn.Parameter(torch.empty(num_experts, out_channels, channels // groups, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(num_experts, out_channels)) if bias else None
        nn.init.xavier_uniform_(self.routing.weight)
        nn.init.zeros_(self.routing.bias)
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / (kernel_size * kernel_size * out_channels)))

    def routing_weights(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.routing(x.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        alpha = self.routing_weights(x)  # [B, E]
        kernels = torch.einsum("be,eoikl->boikl", alpha, self.weight).flatten(0, 1)
        bias = (alpha @ self.bias).flatten() if self.bias is not None else None
        # One grouped convolution runs every example with its own kernel.
        y = F.conv2d(
            x.reshape(1, -1, *x.shape[2:]),
            kernels,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            groups=b * self.groups,
        )
        return y.view(b, self.out_channels, *y.shape[2:])


Reference = CondConv
