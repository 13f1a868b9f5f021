"""Attention module of the Residual Attention Network, hand-written eager reference.

Paper: Fei Wang, Mengqing Jiang, Chen Qian, Shuo Yang, Cheng Li, Honggang Zhang,
Xiaogang Wang, Xiaoou Tang, "Residual Attention Network for Image Classification",
CVPR 2017.
Official code: https://github.com/fwang91/residual-attention-network (Caffe deploy
prototxts, e.g. imagenet_model/Attention-56-deploy.prototxt).

One attention module (the catalog's block), all units pre-activation bottleneck residual
units (BN-ReLU-1x1 conv C->C/4, BN-ReLU-3x3 conv, BN-ReLU-1x1 conv C/4->C, + identity):

    f = pre(x)                                   p units, shared by trunk and mask
    T = trunk(f)                                 t units
    M = act( mask(f) )                           bottom-up top-down soft mask, M in (0, 1)
    y = post( (1 + M) * T )                      attention residual learning (ARL); p units

Mask branch with `levels` down-samplings (official AttentionA layout for levels=3):

    d_1 = units_r( maxpool(f) ),  d_k = units_r( maxpool(d_{k-1}) ),  the deepest level
    gets 2r units; skip_k = unit(d_k) for k < levels; going up,
    u = units_r( interp(u_below, size(d_k)) + skip_k ); finally
    mask(f) = conv1x1( relu(BN( conv1x1( relu(BN( interp(u, size(T)) )) ) )) )

Defaults (official Attention-56 prototxt and the paper's hyper-parameters):
- p=1, t=2, r=1: the paper's choice; in the prototxt the mask branch starts from the
  output of the first (shared, pre-processing) unit, the trunk adds two more.
- levels=3: the first attention stage of Attention-56 (the stage whose width is 256),
  three 3x3/2 max-poolings with skip units at the two outer levels; the later stages use
  levels=2 and levels=1.
- Bottleneck width C/4 (prototxt: 64 for 256), all convolutions without bias
  (`bias_term: false`), BN after every conv except the last of each unit.
- activation="mixed": the paper's f1 (sigmoid on every channel and position). Published
  variants from the paper's attention-type ablation: "channel" (f2: L2 normalisation
  over channels at each position) and "spatial" (f3: per-channel standardisation over
  positions, then sigmoid).
- attention_residual=True: ARL, H = (1 + M) * T. False gives the paper's naive attention
  learning (NAL) baseline, H = M * T.

Choices:
- Max pooling is kernel 3, stride 2, padding 1 (PyTorch floor mode). Caffe pools with
  padding 0 and ceil rounding; both give 56->28->14->7, but they differ on border
  windows and the Caffe form fails on maps smaller than 3.
- Up-sampling is bilinear with align_corners=True, the convention of the DeepLab Caffe
  "Interp" layer the prototxt uses.
- "spatial" uses the population standard deviation over positions with eps=1e-5 inside
  the square root (the paper gives no epsilon).
- Initialisation: PyTorch defaults (no function identity depends on initialisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PreActBottleneck(nn.Module):
    """x + conv3(relu(bn3(conv2(relu(bn2(conv1(relu(bn1(x)))))))))."""

    def __init__(self, channels: int):
        super().__init__()
        mid = max(1, channels // 4)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(torch.relu(self.bn1(x)))
        h = self.conv2(torch.relu(self.bn2(h)))
        h = self.conv3(torch.relu(self.bn3(h)))
        return x + h


def _units(channels: int, n: int) -> nn.Sequential:
    return nn.Sequential(*(PreActBottleneck(channels) for _ in range(n)))


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ResidualAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        levels: int = 3,
        p: int = 1,
        t: int = 2,
        r: int = 1,
        activation: str = "mixed",
        attention_residual: bool = True,
    ):
        super().__init__()
        if levels < 1:
            raise ValueError("levels must be >= 1")
        if activation not in ("mixed", "channel", "spatial"):
            raise ValueError(f"unknown activation {activation!r}")
        self.levels = levels
        self.activation = activation
        self.attention_residual = attention_residual
        self.pre = _units(channels, p)
        self.trunk = _units(channels, t)
        # mask branch, bottom-up: down[k] follows the k-th max pooling
        self.down = nn.ModuleList(_units(channels, 2 * r if k == levels - 1 else r) for k in range(levels))
        self.skip = nn.ModuleList(_units(channels, 1) for _ in range(levels - 1))
        # top-down: up[k] refines the level-k map after upsampling and adding skip[k]
        self.up = nn.ModuleList(_units(channels, r) for _ in range(levels - 1))
        self.mask_bn1 = nn.BatchNorm2d(channels)
        self.mask_conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.mask_bn2 = nn.BatchNorm2d(channels)
        self.mask_conv2 = nn.Conv2d(channels, channels, 1, bias=False)
        self.post = _units(channels, p)

    def mask_logits(self, f: torch.Tensor) -> torch.Tensor:
        """The mask branch before its activation, from the shared feature f."""
        feats = []
        h = f
        for k in range(self.levels):
            h = self.down[k](F.max_pool2d(h, 3, stride=2, padding=1))
            feats.append(h)
        for k in range(self.levels - 2, -1, -1):
            h = self.up[k](_resize(h, feats[k].shape[-2:]) + self.skip[k](feats[k]))
        h = _resize(h, f.shape[-2:])
        h = self.mask_conv1(torch.relu(self.mask_bn1(h)))
        return self.mask_conv2(torch.relu(self.mask_bn2(h)))

    def soft_mask(self, f: torch.Tensor) -> torch.Tensor:
        """M[B, C, H, W] from the shared feature f = pre(x)."""
        z = self.mask_logits(f)
        if self.activation == "mixed":
            return torch.sigmoid(z)
        if self.activation == "channel":
            return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
        mean = z.mean(dim=(2, 3), keepdim=True)
        std = (z.var(dim=(2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt()
        return torch.sigmoid((z - mean) / std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.pre(x)
        trunk = self.trunk(f)
        m = self.soft_mask(f)
        h = (1 + m) * trunk if self.attention_residual else m * trunk
        return self.post(h)


Reference = ResidualAttention
