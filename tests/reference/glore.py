"""GloRe: graph-based global reasoning unit, hand-written reference.

Paper: Yunpeng Chen, Marcus Rohrbach, Zhicheng Yan, Shuicheng Yan, Jiashi Feng,
Yannis Kalantidis, "Graph-Based Global Reasoning Networks", CVPR 2019.
Official code: facebookresearch/GloRe (network/global_reasoning_unit.py).

Computation, for x[B, C, *spatial] flattened to N = prod(spatial) positions:
  V = W_state x            (state reduction, C -> 2*mid, with bias)
  B = W_proj x             (projection map, C -> mid nodes, with bias)
  Z = V B^T                (coordinate space -> interaction space, [2*mid, mid])
  (Z *= 1/N when normalize=True)
  GCN:  H = Z + Z A^T      (conv1 over the node axis, with bias; "I - A_g" of the
                            paper with the identity written as a residual)
        G = W_g relu(H)    (conv2 over the state axis, no bias)
  Y = G B                  (reverse projection with the same B)
  out = x + BN(W_extend Y) (W_extend: 2*mid -> C, no bias)

Defaults (official code): mid_channels = channels // 4 (the ResNet-50 GloRe
models use num_mid = num_in / 4, e.g. 512 -> 128), so the state dimension is
2*mid = C/2 and the number of nodes is mid = C/4; normalize=False; the output
BatchNorm ("blocker") has eps=1e-4 and its weight is zero-initialised, so the unit
is the identity at initialisation.

Rank: the official code ships 1-D, 2-D and 3-D units (Conv1d/2d/3d, BatchNorm1d/
2d/3d). This reference accepts x[B, C, *spatial] of rank 1-3 and uses nn.Linear
for every 1x1 convolution (weights [out, in] instead of [out, in, 1, ...]) and
BatchNorm1d over the flattened positions, which computes exactly the statistics
of BatchNorm{1,2,3}d; parameter shapes are therefore rank-independent.

Variants: normalize (divide the projection by N, recommended by the official code
when the input size is not fixed).

Paper vs code: the paper writes the graph convolution as Z = ((I - A_g) V) W_g;
the official code implements conv1 with a bias and adds the residual Z (sign of
A is absorbed into the learned weights). Followed the code.
"""

from __future__ import annotations

import torch
from torch import nn


class GCN(nn.Module):
    """Single graph convolution over [B, state, node] node features."""

    def __init__(self, num_state: int, num_node: int, bias: bool = False):
        super().__init__()
        self.conv1 = nn.Linear(num_node, num_node)  # adjacency over nodes, with bias
        self.relu = nn.ReLU()
        self.conv2 = nn.Linear(num_state, num_state, bias=bias)  # state update

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv1(z) + z  # [B, S, N]: mixes the node axis
        h = self.relu(h)
        return self.conv2(h.transpose(1, 2)).transpose(1, 2)  # mixes the state axis


class GloRe(nn.Module):
    def __init__(self, channels: int, mid_channels: int | None = None, normalize: bool = False, bn_eps: float = 1e-4):
        super().__init__()
        mid = channels // 4 if mid_channels is None else mid_channels
        self.normalize = normalize
        self.num_s = 2 * mid
        self.num_n = mid
        self.conv_state = nn.Linear(channels, self.num_s)
        self.conv_proj = nn.Linear(channels, self.num_n)
        self.gcn = GCN(self.num_s, self.num_n)
        self.conv_extend = nn.Linear(self.num_s, channels, bias=False)
        self.blocker = nn.BatchNorm1d(channels, eps=bn_eps)
        nn.init.zeros_(self.blocker.weight)  # identity at initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (3, 4, 5):
            raise ValueError(f"GloRe expects x[B, C, *spatial] with 1-3 spatial dims, got {tuple(x.shape)}")
        b, c = x.shape[:2]
        xf = x.reshape(b, c, -1).transpose(1, 2)  # [B, N, C]
        v = self.conv_state(xf).transpose(1, 2)  # [B, S, N]
        proj = self.conv_proj(xf).transpose(1, 2)  # [B, M, N]
        z = torch.bmm(v, proj.transpose(1, 2))  # [B, S, M]
        if self.normalize:
            z = z * (1.0 / xf.shape[1])
        z = self.gcn(z)
        y = torch.bmm(z, proj)  # [B, S, N]
        y = self.conv_extend(y.transpose(1, 2)).transpose(1, 2)  # [B, C, N]
        y = self.blocker(y)
        return x + y.reshape(x.shape)


Reference = GloRe
