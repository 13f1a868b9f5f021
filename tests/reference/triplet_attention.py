"""Triplet attention, hand-written eager reference.

Paper: Diganta Misra, Trikay Nalamada, Ajay Uppili Arasanipalai, Qibin Hou, "Rotate to
Attend: Convolutional Triplet Attention Module", WACV 2021.
Official code: https://github.com/landskape-ai/triplet-attention (triplet_attention.py).

Three branches, each a Z-pool over one axis, a k x k conv on the other two, a sigmoid,
and a product with the (permuted) input; the outputs are averaged:

    Zpool(u)   = [ max over dim 1 of u,  mean over dim 1 of u ]          2 channels
    gate(u)    = u * sigmoid( BN( conv_kxk( Zpool(u) ) ) )
    y_cw = P1^-1 gate( P1 x ),  P1: [B,C,H,W] -> [B,H,C,W]   (pool over H; C-W interaction)
    y_hc = P2^-1 gate( P2 x ),  P2: [B,C,H,W] -> [B,W,H,C]   (pool over W; H-C interaction)
    y_hw = gate( x )                                          (pool over C; H-W interaction)
    y    = (y_cw + y_hc + y_hw) / 3

Defaults (official code):
- kernel_size=7: the official AttentionGate hard-codes k=7 (the paper's k).
- conv without bias followed by BatchNorm2d(1, eps=1e-5, momentum=0.01), no ReLU
  (the official BasicConv(relu=False)).
- no_spatial=False: the official switch; True drops the H-W branch and averages the
  other two (y = (y_cw + y_hc) / 2).

Where paper and official code disagree (official code followed):
- The paper describes rotating the tensor by 90 degrees about the H (resp. W) axis and
  rotating back; the official code permutes axes (x.permute(0,2,1,3) and
  x.permute(0,3,2,1)), which differs from a rotation by a flip of one spatial axis of
  the pooled map, i.e. by a flipped conv kernel. The permutations are used here, so
  the conv weights line up with the official ones.
- Z-pool order: (max, mean), as in the official ZPool; the paper writes [MaxPool, AvgPool]
  too, so they agree.

Choices:
- Branch names `cw`, `hc`, `hw` (each with `conv` and `bn`) and their order are the
  official ones.
- Initialisation: PyTorch defaults, as in the official code.
"""

from __future__ import annotations

import torch
from torch import nn


class _Gate(nn.Module):
    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def weights(self, u: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([u.amax(dim=1, keepdim=True), u.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.bn(self.conv(pooled)))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u * self.weights(u)


class TripletAttention(nn.Module):
    def __init__(self, channels: int | None = None, kernel_size: int = 7, no_spatial: bool = False):
        super().__init__()
        # channels is accepted for a uniform constructor; the block has no C-sized parameter
        self.channels = channels
        self.no_spatial = no_spatial
        self.cw = _Gate(kernel_size)
        self.hc = _Gate(kernel_size)
        if not no_spatial:
            self.hw = _Gate(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y_cw = self.cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
        y_hc = self.hc(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        if self.no_spatial:
            return (y_cw + y_hc) / 2
        return (y_cw + y_hc + self.hw(x)) / 3


Reference = TripletAttention
