"""Non-local block (embedded Gaussian), hand-written eager reference.

Paper: Xiaolong Wang, Ross Girshick, Abhinav Gupta, Kaiming He, "Non-local Neural
Networks", CVPR 2018.
Official code: https://github.com/facebookresearch/video-nonlocal-net (Caffe2;
`lib/models/nonlocal_helper.py`, defaults in `lib/core/config.py`).

With N positions of x[B, C, *spatial] and P positions of the (optionally pooled) x_p:

    theta = W_theta x          [B, N, C']
    phi   = W_phi   x_p        [B, P, C']
    g     = W_g     x_p        [B, P, C']
    A     = softmax_P(theta phi^T * s)      rows sum to 1 over the P keys
    y     = A g                [B, N, C']
    z     = BN(W y) + x

Defaults (all from the official config unless said otherwise):
- inter_channels = channels // 2 (floor 1): the paper halves the channels in theta, phi
  and g; the official call sites (lib/models/resnet_helper.py) pass int(dim_in / 2).
- sub_sample=True: NONLOCAL.USE_MAXPOOL = True; max pooling with kernel = stride = 2 over
  the spatial axes, the temporal axis of a 3-D input is not pooled (official kernel
  [1, 2, 2]). 1-D inputs pool with 2, 2-D with 2x2, 3-D with 1x2x2.
- bn_layer=True: NONLOCAL.USE_BN = True, BN after W with gamma initialised to 0
  (NONLOCAL.BN_INIT_GAMMA = 0.0), so the block starts as the identity. eps=1e-5,
  PyTorch momentum 0.1 (= Caffe2 momentum 0.9).
- use_scale=True: NONLOCAL.USE_SCALE = True, s = inter_channels ** -0.5. The paper's
  equations have no scaling (s = 1); pass use_scale=False for the paper's form.
- theta/phi/g/W: 1x1 projections with bias, weights N(0, 0.01), biases 0
  (NONLOCAL.CONV_INIT_STD = 0.01, NO_BIAS = 0).

Variants: sub_sample (on/off), bn_layer (on/off), use_scale (on/off), any spatial rank 1-3.

Choices:
- The four 1x1 projections are nn.Linear acting on the channel axis (`theta`, `phi`, `g`,
  `W`), and the BN is a BatchNorm1d over the flattened positions (`bn`); this is the same
  function as 1x1 convolutions and BatchNorm{1,2,3}d (statistics per channel over batch
  and every position), with parameter shapes independent of the spatial rank.
- Pooling is applied to x before the phi and g projections, as in the official Caffe2
  code (one shared max-pool). The popular AlexHex7/Non-local_pytorch reimplementation
  pools after the phi/g convolutions instead; the two differ because max-pooling does not
  commute with a linear map.
- bn_layer=False: the paper relies on the BN gamma=0 for the identity start; without BN
  this reference zero-initialises W's weight and bias so the block still starts as the
  identity (as the AlexHex7 reimplementation does).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class NonLocal(nn.Module):
    def __init__(
        self,
        channels: int,
        inter_channels: int | None = None,
        sub_sample: bool = True,
        bn_layer: bool = True,
        use_scale: bool = True,
        init_std: float = 0.01,
    ):
        super().__init__()
        inter = inter_channels if inter_channels is not None else max(1, channels // 2)
        self.channels = channels
        self.inter_channels = inter
        self.sub_sample = sub_sample
        self.bn_layer = bn_layer
        self.use_scale = use_scale
        self.theta = nn.Linear(channels, inter)
        self.phi = nn.Linear(channels, inter)
        self.g = nn.Linear(channels, inter)
        self.W = nn.Linear(inter, channels)
        self.bn = nn.BatchNorm1d(channels, eps=1e-5, momentum=0.1) if bn_layer else None
        for lin in (self.theta, self.phi, self.g, self.W):
            nn.init.normal_(lin.weight, std=init_std)
            nn.init.zeros_(lin.bias)
        if bn_layer:
            nn.init.zeros_(self.bn.weight)
            nn.init.zeros_(self.bn.bias)
        else:
            nn.init.zeros_(self.W.weight)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        rank = x.dim() - 2
        if not self.sub_sample:
            return x
        if rank == 1:
            return F.max_pool1d(x, 2, 2)
        if rank == 2:
            return F.max_pool2d(x, 2, 2)
        if rank == 3:
            return F.max_pool3d(x, (1, 2, 2), (1, 2, 2))
        raise ValueError(f"non_local: expected 1-3 spatial dims, got x of shape {tuple(x.shape)}")

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The pairwise weights A[B, N, P] (each row sums to one)."""
        theta = self.theta(x.flatten(2).transpose(1, 2))
        phi = self.phi(self._pool(x).flatten(2).transpose(1, 2))
        logits = theta @ phi.transpose(1, 2)
        if self.use_scale:
            logits = logits * self.inter_channels**-0.5
        return logits.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not 1 <= x.dim() - 2 <= 3:
            raise ValueError(f"non_local: expected x[B, C, *spatial] with 1-3 spatial dims, got {tuple(x.shape)}")
        attn = self.attention(x)
        g = self.g(self._pool(x).flatten(2).transpose(1, 2))
        y = attn @ g  # [B, N, C']
        wy = self.W(y).transpose(1, 2)  # [B, C, N]
        if self.bn is not None:
            wy = self.bn(wy)
        return x + wy.reshape(x.shape)


Reference = NonLocal
