"""MaxViT multi-axis attention (block attention and grid attention), hand-written reference.

Paper: Zhengzhong Tu, Hossein Talebi, Han Zhang, Feng Yang, Peyman Milanfar, Alan Bovik, Yinxiao Li,
"MaxViT: Multi-Axis Vision Transformer", ECCV 2022.
Official code: https://github.com/google-research/maxvit (TF: `maxvit/models/maxvit.py`, the
block/grid partition and the relative-bias attention); timm ports it as
`timm.models.maxxvit.PartitionAttentionCl` around `AttentionCl` with `RelPosBias`.

Multi-axis attention (paper, Sec. 3.2) on a feature map x[B, H, W, C] (channels last):
  Block(x): reshape to (H/P x W/P, P x P, C): non-overlapping P x P windows of adjacent tokens,
            window (a, b) = the tokens (a P + i, b P + j), 0 <= i, j < P;
  Grid(x):  reshape to (G x G, H/G x W/G, C) and swap: a fixed G x G grid whose cells are H/G x W/G,
            window (a, b) = the tokens (i H/G + a, j W/G + b), 0 <= i, j < G: one token from each cell,
            dilated over the whole map.
In each window of N = P^2 tokens, multi-head self-attention with a relative position bias
  Attn(X) = softmax(Q K^T / sqrt(d) + B) V,
B[h, n, m] = table[(y_n - y_m + P - 1)(2P - 1) + (x_n - x_m + P - 1), h], the table having (2P - 1)^2 rows
(the relative offsets of two positions in a P x P window) and one column per head; heads of d = dim_head
channels, heads = C / d. Q, K, V come from one linear with bias, the concatenated heads go through an
output linear with bias; then the windows are put back where they came from (the inverse reshape).

Defaults (paper): P = G = 7, dim_head 32. Variants: partition "block" or "grid"; attn_bias (biases of
the two linears); head_first, the layout of the qkv linear's 3C outputs: True reads them head by head
([heads, 3, d]: timm's default and its maxvit_*_rw models), False as [3, heads, d] (q, then k, then v:
the official TF layer's three projections, timm's maxvit_*_tf models); rel_pos_bias (the table on or
off). H and W must be multiples of P: this reference raises ValueError otherwise.
Choices: the window order inside the batch is irrelevant (windows never mix); the bias index is
computed here from the two positions directly (no Swin-style index buffer), and the windows by
explicit view/permute. Initialisation: table truncated N(0, 0.02) as the official code, linears
PyTorch's defaults. Dropout (official 0) is left out.

The state dict: `qkv.weight`, `qkv.bias`, `proj.weight`, `proj.bias`, `relative_position_bias_table`
[(2P - 1)^2, heads] (the spec's names); `key_map` maps the spec's keys here (its constant
`relative_position_index` buffer has no counterpart).
"""

from __future__ import annotations

import torch
from torch import nn


def relative_bias_index(p: int) -> torch.Tensor:
    """[P^2, P^2] long: the table row for query n and key m of a P x P window, row-major positions."""
    out = torch.empty(p * p, p * p, dtype=torch.long)
    for n in range(p * p):
        yn, xn = divmod(n, p)
        for m in range(p * p):
            ym, xm = divmod(m, p)
            out[n, m] = (yn - ym + p - 1) * (2 * p - 1) + (xn - xm + p - 1)
    return out


def partition(x: torch.Tensor, p: int, kind: str) -> torch.Tensor:
    """x[B, H, W, C] -> windows [B, H/P, W/P, P*P, C] (block) or [B, H/G, W/G, G*G, C] (grid)."""
    b, h, w, c = x.shape
    if h % p or w % p:
        raise ValueError(f"H and W ({h}, {w}) must be multiples of the partition size {p}")
    if kind == "block":
        t = x.view(b, h // p, p, w // p, p, c)  # (a, i, b, j): token (a P + i, b P + j)
        return t.permute(0, 1, 3, 2, 4, 5).reshape(b, h // p, w // p, p * p, c)
    t = x.view(b, p, h // p, p, w // p, c)  # (i, a, j, b): token (i H/G + a, j W/G + b)
    return t.permute(0, 2, 4, 1, 3, 5).reshape(b, h // p, w // p, p * p, c)


def unpartition(t: torch.Tensor, p: int, kind: str) -> torch.Tensor:
    """The inverse of `partition`."""
    b, nh, nw, _, c = t.shape
    t = t.view(b, nh, nw, p, p, c)
    if kind == "block":
        return t.permute(0, 1, 3, 2, 4, 5).reshape(b, nh * p, nw * p, c)
    return t.permute(0, 3, 1, 4, 2, 5).reshape(b, p * nh, p * nw, c)


class MaxViTAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        partition: str = "block",
        partition_size: int = 7,
        dim_head: int = 32,
        attn_bias: bool = True,
        head_first: bool = True,
        rel_pos_bias: bool = True,
    ):
        super().__init__()
        if partition not in ("block", "grid"):
            raise ValueError("partition is 'block' or 'grid'")
        if channels % dim_head:
            raise ValueError(f"dim_head {dim_head} must divide channels {channels}")
        self.kind, self.p, self.d = partition, partition_size, dim_head
        self.heads, self.head_first = channels // dim_head, head_first
        self.qkv = nn.Linear(channels, 3 * channels, bias=attn_bias)
        self.proj = nn.Linear(channels, channels, bias=attn_bias)
        if rel_pos_bias:
            self.relative_position_bias_table = nn.Parameter(torch.empty((2 * partition_size - 1) ** 2, self.heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("bias_index", relative_bias_index(partition_size), persistent=False)
        else:
            self.relative_position_bias_table = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        win = partition(x, self.p, self.kind)  # [B, nh, nw, N, C]
        b, nh, nw, n, c = win.shape
        t = self.qkv(win)
        if self.head_first:
            t = t.view(b, nh, nw, n, self.heads, 3, self.d)
        else:
            t = t.view(b, nh, nw, n, 3, self.heads, self.d).transpose(4, 5)
        q, k, v = (t[..., i, :].transpose(3, 4) for i in range(3))  # [B, nh, nw, heads, N, d]
        logits = torch.matmul(q, k.transpose(-1, -2)) / self.d**0.5
        if self.relative_position_bias_table is not None:
            bias = self.relative_position_bias_table[self.bias_index]  # [N, N, heads]
            logits = logits + bias.permute(2, 0, 1)
        o = torch.matmul(logits.softmax(dim=-1), v)  # [B, nh, nw, heads, N, d]
        o = o.transpose(3, 4).reshape(b, nh, nw, n, self.heads * self.d)
        return unpartition(self.proj(o), self.p, self.kind)


def key_map(module: MaxViTAttention) -> dict:
    """Spec keys -> reference keys (the same names; the spec's index buffer is a constant)."""
    keys = {k: k for k in module.state_dict()}
    keys["relative_position_index"] = None
    return keys


class TimmPartitionAttention(nn.Module):
    """timm's PartitionAttentionCl with its norms and MLP removed: partition, AttentionCl, reverse.

    Calls timm's own `_partition_attn` (window/grid partition, AttentionCl with RelPosBias, reverse),
    no arithmetic of its own. Keys: `block.attn.qkv.*`, `block.attn.proj.*`,
    `block.attn.rel_pos.relative_position_bias_table`.
    """

    def __init__(
        self,
        channels: int,
        partition: str = "block",
        partition_size: int = 7,
        dim_head: int = 32,
        attn_bias: bool = True,
        head_first: bool = True,
        rel_pos_bias: bool = True,
    ):
        super().__init__()
        from timm.models.maxxvit import MaxxVitTransformerCfg, PartitionAttentionCl

        cfg = MaxxVitTransformerCfg(
            dim_head=dim_head,
            attn_bias=attn_bias,
            head_first=head_first,
            rel_pos_type="bias" if rel_pos_bias else "",
            window_size=(partition_size, partition_size),
            grid_size=(partition_size, partition_size),
        )
        self.block = PartitionAttentionCl(channels, partition_type=partition, cfg=cfg)
        self.block.norm1 = self.block.norm2 = self.block.mlp = nn.Identity()  # the attention only
        self.block.attn.fused_attn = False  # the explicit softmax path in float64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block._partition_attn(x)


def timm_key_map(module: TimmPartitionAttention) -> dict:
    """Spec keys -> keys of `TimmPartitionAttention`."""
    keys = {"relative_position_index": None}
    for k in module.block.attn.state_dict():
        keys[k.replace("rel_pos.", "")] = f"block.attn.{k}"
    return keys
