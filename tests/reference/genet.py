"""GENet: gather-excite operator, hand-written reference.

Paper: Jie Hu, Li Shen, Samuel Albanie, Gang Sun, Andrea Vedaldi, "Gather-Excite:
Exploiting Feature Context in Convolutional Neural Networks", NeurIPS 2018.
Official code: hujie-frank/GENet (Caffe prototxts models/RN50-GEP.prototxt = GE-theta,
RN50-GEPF.prototxt = GE-theta^- (parameter-free), RN50-GEPP.prototxt = GE-theta^+).

  out = x (.) sigmoid( interpolate( xi_G(x) ) )
Gather xi_G with extent e (extent=0 means global):
  GE-theta^-  (extra_params=False): average pooling, kernel e, stride e (global:
              global average pooling); no parameters.
  GE-theta    (extra_params=True): global: a depthwise convolution whose kernel
              covers the whole feature map (kernel = spatial_size, no bias) + BN, as in
              RN50-GEP.prototxt; extent e: log2(e) depthwise 3x3 stride-2 convolutions
              (no bias) each followed by BN, with ReLU between them.
  GE-theta^+  (extra_params=True, use_mlp=True): the GE-theta gather, then ReLU and an
              SE-style excite 1x1 conv C -> C/reduction (bias) - ReLU - 1x1 conv -> C
              (bias), as in RN50-GEPP.prototxt.
Excite: nearest-neighbour interpolation of the gathered map back to H x W (a
broadcast for the global extent), sigmoid, element-wise product with x.

Defaults: extent=0 (global), extra_params=True, use_mlp=False -- GE-theta, the
depthwise-gather operator named by the catalog and RN50-GEP.prototxt; the global
parametric gather fixes the input size, spatial_size=56 (the conv2 stage of the
official ResNet-50 models, 224 input); reduction=16 for theta^+ (C/16: 256 -> 16 in
RN50-GEPP). Initialisation: depthwise gather MSRA (He normal, fan-in), excite 1x1
convs N(0, 0.01) with zero bias, BN weight 1 / bias 0.

Ambiguities and choices:
- The E2/E4/E8 parametric gathers are not in the released prototxts; the stack of
  stride-2 3x3 depthwise convs + BN with ReLU between is taken from the paper's
  description. Pooling windows use ceil_mode so odd sizes keep every position.
- The official block feeds out = gate * x + shortcut (Caffe Axpy) inside the
  residual unit; the shortcut belongs to the ResNet unit and is not part of this
  operator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class GENet(nn.Module):
    def __init__(
        self,
        channels: int,
        extent: int = 0,
        extra_params: bool = True,
        use_mlp: bool = False,
        spatial_size=56,
        reduction: int = 16,
    ):
        super().__init__()
        if extent and (extent < 2 or extent & (extent - 1)):
            raise ValueError("extent must be 0 (global) or a power of two >= 2")
        if use_mlp and not extra_params:
            raise ValueError("use_mlp (GE-theta+) requires extra_params")
        self.extent, self.extra_params, self.use_mlp = extent, extra_params, use_mlp
        self.spatial_size = _pair(spatial_size)
        if extra_params:
            layers: list[nn.Module] = []
            if extent == 0:
                layers += [
                    nn.Conv2d(channels, channels, self.spatial_size, groups=channels, bias=False),
                    nn.BatchNorm2d(channels),
                ]
            else:
                for i in range(int(math.log2(extent))):
                    if i:
                        layers.append(nn.ReLU())
                    layers += [
                        nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels, bias=False),
                        nn.BatchNorm2d(channels),
                    ]
            self.gather = nn.Sequential(*layers)
            for m in self.gather:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        if use_mlp:
            hidden = max(1, channels // reduction)
            self.fc1 = nn.Conv2d(channels, hidden, 1)
            self.fc2 = nn.Conv2d(hidden, channels, 1)
            for conv in (self.fc1, self.fc2):
                nn.init.normal_(conv.weight, 0.0, 0.01)
                nn.init.zeros_(conv.bias)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The excite map sigmoid(interp(gather(x))) at the resolution of the gather."""
        if self.extra_params:
            if self.extent == 0 and tuple(x.shape[2:]) != self.spatial_size:
                raise ValueError(f"global GE-theta needs spatial size {self.spatial_size}, got {tuple(x.shape[2:])}")
            g = self.gather(x)
        elif self.extent == 0:
            g = x.mean(dim=(2, 3), keepdim=True)
        else:
            g = F.avg_pool2d(x, self.extent, self.extent, ceil_mode=True)
        if self.use_mlp:
            g = self.fc2(F.relu(self.fc1(F.relu(g))))
        return torch.sigmoid(g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(x)
        if s.shape[2:] != x.shape[2:]:
            s = F.interpolate(s, size=x.shape[2:], mode="nearest") if s.shape[2:] != (1, 1) else s
        return x * s


Reference = GENet
