"""STGCN: spatial-temporal graph convolution over the patches of a video clip.

Paper: Jinrui Yang, Wei-Shi Zheng, Qize Yang, Ying-Cong Chen, Qi Tian,
"Spatial-Temporal Graph Convolutional Network for Video-based Person
Re-identification", CVPR 2020. No official code was found.

Shapes: x[B, T, C, H, W], the backbone feature maps of T frames.
Output: [B, 2C], the temporal-branch feature concatenated with the
structural-branch feature (pool=False returns the node features [B, T, P, 2C]).

Construction (paper, as summarised by the survey's Sec. 7.4):
  each frame is split horizontally into P patches and each patch is average
  pooled: nodes x_1..x_N, N = T*P, x_i in R^C.
  relation  E_ij = phi(x_i)^T phi(x_j)            (phi: a learned C x C map, the
                                                   same on both sides, so E is symmetric)
  adjacency A_ij = E_ij^2 / sum_j' E_ij'^2         (each row sums to 1)
  graph conv X^(m) = A^ X^(m-1) W^(m)
Temporal branch: one graph over all T*P patches of the clip (relations within
and across frames). Structural branch: one graph per frame over its P patches,
same construction with its own phi and W. The paper pools the GCN outputs into
clip-level descriptors: max over nodes for the temporal branch; max over the
patches of a frame, then mean over frames, for the structural branch.

Choices made where the description leaves the details open (no code to check):
- A^ = D^-1/2 (A + I) D^-1/2 (self-loops with the symmetric normalisation of
  Kipf & Welling, self_loops=True); since each row of A sums to 1 this is
  (A + I) / 2. self_loops=False uses A itself.
- num_layers=2 graph-conv layers per branch, W^(m) C x C without bias, ReLU
  between layers (not after the last one).
- parts P=4 horizontal patches; rows split as torch.tensor_split does when P
  does not divide H.
- no epsilon in the row normalisation.
The identity at the heart of it: with an unweighted mean over frames and a max
over graph nodes, the output does not depend on the order of the frames.
"""

from __future__ import annotations

import torch
from torch import nn


class GraphBranch(nn.Module):
    def __init__(self, channels: int, num_layers: int, self_loops: bool):
        super().__init__()
        self.self_loops = self_loops
        self.phi = nn.Linear(channels, channels, bias=False)
        self.W = nn.ModuleList(nn.Linear(channels, channels, bias=False) for _ in range(num_layers))

    def adjacency(self, nodes: torch.Tensor) -> torch.Tensor:
        """A^[..., N, N] for nodes[..., N, C]."""
        p = self.phi(nodes)
        e2 = (p @ p.transpose(-1, -2)) ** 2
        a = e2 / e2.sum(dim=-1, keepdim=True)
        if self.self_loops:
            a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
            d = a.sum(dim=-1).rsqrt()
            a = d.unsqueeze(-1) * a * d.unsqueeze(-2)
        return a

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        a = self.adjacency(nodes)
        out = nodes
        for i, w in enumerate(self.W):
            out = a @ w(out)
            if i < len(self.W) - 1:
                out = torch.relu(out)
        return out


class STGCN(nn.Module):
    def __init__(
        self,
        channels: int,
        parts: int = 4,
        num_layers: int = 2,
        self_loops: bool = True,
        pool: bool = True,
    ):
        super().__init__()
        self.channels = channels
        self.parts = parts
        self.pool = pool
        self.temporal = GraphBranch(channels, num_layers, self_loops)
        self.structural = GraphBranch(channels, num_layers, self_loops)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, P, C]: the mean of each horizontal stripe of each frame."""
        return torch.stack([blk.mean(dim=(3, 4)) for blk in torch.tensor_split(x, self.parts, dim=3)], dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != self.channels:
            raise ValueError(f"expected x[B, T, {self.channels}, H, W], got {tuple(x.shape)}")
        v = self.patches(x)
        b, t, p, c = v.shape
        temporal = self.temporal(v.reshape(b, t * p, c)).reshape(b, t, p, c)
        structural = self.structural(v)  # one graph per frame
        if not self.pool:
            return torch.cat((temporal, structural), dim=-1)
        f_t = temporal.amax(dim=(1, 2))
        f_s = structural.amax(dim=2).mean(dim=1)
        return torch.cat((f_t, f_s), dim=-1)


Reference = STGCN
