"""Deformable attention (DAT), hand-written reference.

Paper: Zhuofan Xia, Xuran Pan, Shiji Song, Li Erran Li, Gao Huang, "Vision Transformer with
Deformable Attention", CVPR 2022.
Official code: LeapLabTHU/DAT, `models/dat_blocks.py`, `DAttentionBaseline`, as released for the
CVPR 2022 paper (commit 42b489e; the 2023 DAT++ rewrite of the same class changes the grids,
see below).

For x[B, C, H, W] (C = heads x head channels), with G offset groups of C/G channels and
heads/G heads each:
  q = W_q x                                   (1x1 conv with bias)
  per group g: dp_g = theta_offset(q_g), theta_offset = depthwise k x k conv of stride r and
      padding k // 2 (bias), LayerNorm over the C/G channels, GELU, 1x1 conv to 2 channels
      (no bias); the network is shared by the groups. Its output [2, Hk, Wk] is (dy, dx).
  reference points: the Hk x Wk cell centres in [-1, 1], p_y(i) = (i + 0.5) / Hk * 2 - 1,
      p_x(j) = (j + 0.5) / Wk * 2 - 1 (official `_get_ref_points`).
  offset_range_factor s > 0: dp_y = s * tanh(dp_y) / Hk, dp_x = s * tanh(dp_x) / Wk, and the
      sampling position is p + dp; s == 0: p + dp with the raw offsets; s < 0: tanh(p + dp)
      (the three cases of the official forward).
  x_g sampled bilinearly at the positions, zeros outside, with align_corners=True (official
      grid_sample call): normalised -1 and +1 are the centres of the first and last pixel.
  k = W_k x~, v = W_v x~ (1x1 convs with bias on the sampled [B, C, Hk, Wk] features).
  per head: a = softmax_n(q_m . k_n * head_channels ** -0.5 + bias_mn), out_m = sum_n a_mn v_n.
  y = W_out out (1x1 conv with bias).
Relative position bias (use_pe, official dwc_pe=False, fixed_pe=False): a learned table
rpe_table[heads, 2 Hf - 1, 2 Wf - 1] for the feature map size (Hf, Wf) the module is built for
(the official table is [heads, 2 kv_h - 1, 2 kv_w - 1] with kv_size = the stage's fmap size, read
as [.., 2 H - 1, 2 W - 1], so the input must be Hf x Wf); the bias of query m (at the cell centre
of the H x W grid, the same `_get_ref_points` formula) and sample n at position p_n is the table
sampled bilinearly, align_corners=True, at (q_m - p_n) / 2 in (x, y) order, head by head from its
group's positions. dwc_pe: instead a depthwise 3x3 conv (bias) on q added to the attention
output (LePE-style), no table.

Defaults: DAT-T stage 3 (configs/dat_tiny.yaml of that release: dim 384, 12 heads of 32
channels, groups 3, stride 1, offset_range_factor 2, use_pe True, dwc_pe False, fixed_pe False,
ksize 5 = ksizes[2] of [9, 7, 5, 3]), fmap 14 x 14 (224 / 16). Parameter names are the official
ones (`proj_q`, `proj_k`, `proj_v`, `proj_out`, `conv_offset.{0,1.norm,3}`, `rpe_table`), so an
official checkpoint's attention entries load as they are.

Not reproduced: fixed_pe (its official forward reads an attribute that does not exist, so the
CVPR release cannot run it), no_off (official `offset.fill(0.0)` is not a tensor method, same),
dropout (official rates 0). The official offset range is a float32 tensor [1 / Hk, 1 / Wk] also
for float64 inputs; here it is exact. The official model-level `reset_parameters` iterates
parameters, not modules, so it changes nothing: PyTorch's default inits, rpe_table truncated
N(0, 0.01) as official.

The bilinear sampler is written out here (corner gathers, zero outside) rather than calling
F.grid_sample, so that the reference shares no sampling code with the spec.
version="dat_pp": the DAT++ rewrite of the same class (Xia, Pan, Song, Li, Huang, "DAT++: Spatially
Dynamic Vision Transformer with Deformable Attention", arXiv:2309.01430, 2023; the repository head):
the reference points and the offset range are divided by (Hk - 1), (Wk - 1) instead of Hk, Wk, the
query grid of the bias is i / (H - 1) * 2 - 1, s >= 0 scales (s == 0: no offsets), s < 0 clamps the
positions to [-1, 1], and the offset conv has padding 0 when ksize == stride. Its no_off (avg-pool
instead of sampling) and log_cpb (an MLP bias, off in every DAT++ config) are not reproduced. A grid
of size 1 divides by zero there, as in the official code.
"""

from __future__ import annotations

import torch
from torch import nn


def bilinear(img: torch.Tensor, gy: torch.Tensor, gx: torch.Tensor) -> torch.Tensor:
    """Sample img[B, C, Hi, Wi] at normalised positions gy, gx [B, *P] (align_corners=True, zeros
    outside): [B, C, *P]."""
    b, c, hi, wi = img.shape
    py = (gy + 1) / 2 * (hi - 1)  # -1 -> first pixel centre, +1 -> last
    px = (gx + 1) / 2 * (wi - 1)
    y0, x0 = torch.floor(py), torch.floor(px)
    flat = img.reshape(b, c, hi * wi)
    out = 0
    for oy in (0, 1):
        for ox in (0, 1):
            yy, xx = y0 + oy, x0 + ox
            w = (1 - (py - yy).abs()) * (1 - (px - xx).abs())
            inside = (yy >= 0) & (yy <= hi - 1) & (xx >= 0) & (xx <= wi - 1)
            idx = (yy.clamp(0, hi - 1) * wi + xx.clamp(0, wi - 1)).long().reshape(b, 1, -1)
            vals = torch.gather(flat, 2, idx.expand(b, c, idx.shape[-1])).reshape(b, c, *gy.shape[1:])
            out = out + vals * (w * inside).unsqueeze(1)
    return out


class LayerNormProxy(nn.Module):
    """LayerNorm over the channels of a [B, C, H, W] map (official name and layout)."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class DAttentionBaseline(nn.Module):
    def __init__(
        self,
        channels,
        heads=None,
        groups=None,
        stride=1,
        offset_range_factor=2.0,
        ksize=5,
        use_pe=True,
        dwc_pe=False,
        fmap_size=(14, 14),
        version="dat",
    ):
        super().__init__()
        heads = heads or max(1, channels // 32)
        groups = groups or (heads // 4 if heads % 4 == 0 else 1)
        assert channels % heads == 0 and heads % groups == 0
        self.c, self.heads, self.groups = channels, heads, groups
        self.hc, self.cg = channels // heads, channels // groups
        self.factor, self.use_pe, self.dwc_pe = float(offset_range_factor), use_pe, dwc_pe
        self.fmap_size = tuple(fmap_size)
        assert version in ("dat", "dat_pp")
        self.pp = version == "dat_pp"
        self.proj_q = nn.Conv2d(channels, channels, 1)
        self.proj_k = nn.Conv2d(channels, channels, 1)
        self.proj_v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        cg = self.cg
        self.conv_offset = nn.Sequential(
            nn.Conv2d(cg, cg, ksize, stride, 0 if self.pp and ksize == stride else ksize // 2, groups=cg),
            LayerNormProxy(cg),
            nn.GELU(),
            nn.Conv2d(cg, 2, 1, bias=False),
        )
        if use_pe and dwc_pe:
            self.rpe_table = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        elif use_pe:
            hf, wf = self.fmap_size
            self.rpe_table = nn.Parameter(torch.empty(heads, 2 * hf - 1, 2 * wf - 1))
            nn.init.trunc_normal_(self.rpe_table, std=0.01)
        else:
            self.rpe_table = None
        self.last_attn = None
        self.last_pos = None

    def span(self, n: int) -> int:
        """What grid positions are divided by: the size (CVPR release), the size - 1 (DAT++)."""
        return n - 1 if self.pp else n

    def centres(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """Reference points of an n-cell axis: (i + 0.5) / span * 2 - 1 (DAT: the cell centres in [-1, 1])."""
        return (torch.arange(n, dtype=like.dtype, device=like.device) + 0.5) * (2.0 / self.span(n)) - 1.0

    def query_grid(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """Query positions of an n-pixel axis: the cell centres (DAT), i / (n - 1) * 2 - 1 (DAT++)."""
        if self.pp:
            return torch.arange(n, dtype=like.dtype, device=like.device) * (2.0 / (n - 1)) - 1.0
        return self.centres(n, like)

    def positions(self, q_group: torch.Tensor):
        """Sampling positions (y, x) [B, Hk, Wk] of one group from its queries."""
        off = self.conv_offset(q_group)
        hk, wk = off.shape[-2:]
        oy, ox = off[:, 0], off[:, 1]
        if self.factor > 0 or (self.pp and self.factor == 0):
            oy = torch.tanh(oy) * (self.factor / self.span(hk))
            ox = torch.tanh(ox) * (self.factor / self.span(wk))
        py = oy + self.centres(hk, off)[:, None]
        px = ox + self.centres(wk, off)[None, :]
        if self.factor < 0 and self.pp:
            py, px = py.clamp(-1.0, 1.0), px.clamp(-1.0, 1.0)
        elif self.factor < 0:
            py, px = torch.tanh(py), torch.tanh(px)
        return py, px

    def forward(self, x):
        b, c, h, w = x.shape
        if self.use_pe and not self.dwc_pe and (h, w) != self.fmap_size:
            raise ValueError(f"the relative position table is built for {self.fmap_size}, got {(h, w)}")
        q = self.proj_q(x)
        sampled, pos = [], []
        for g in range(self.groups):
            sl = slice(g * self.cg, (g + 1) * self.cg)
            py, px = self.positions(q[:, sl])
            pos.append((py, px))
            sampled.append(bilinear(x[:, sl], py, px))
        xs = torch.cat(sampled, dim=1)  # [B, C, Hk, Wk]
        k = self.proj_k(xs).flatten(2)  # [B, C, Ns]
        v = self.proj_v(xs).flatten(2)
        qf = q.flatten(2)  # [B, C, HW]
        if self.use_pe and not self.dwc_pe:
            qy = self.query_grid(h, x)[:, None].expand(h, w).reshape(-1)  # query positions, row-major
            qx = self.query_grid(w, x)[None, :].expand(h, w).reshape(-1)
        heads_per_group = self.heads // self.groups
        outs, maps = [], []
        for n in range(self.heads):
            sl = slice(n * self.hc, (n + 1) * self.hc)
            logits = torch.einsum("bcm,bcn->bmn", qf[:, sl], k[:, sl]) * self.hc**-0.5
            if self.use_pe and not self.dwc_pe:
                py, px = pos[n // heads_per_group]
                dy = (qy[None, :, None] - py.reshape(b, 1, -1)) * 0.5  # [B, HW, Ns]
                dx = (qx[None, :, None] - px.reshape(b, 1, -1)) * 0.5
                table = self.rpe_table[n][None, None].expand(b, 1, -1, -1)
                logits = logits + bilinear(table, dy, dx)[:, 0]
            a = torch.softmax(logits, dim=-1)
            maps.append(a)
            outs.append(torch.einsum("bmn,bcn->bcm", a, v[:, sl]))
        out = torch.cat(outs, dim=1).reshape(b, c, h, w)
        if self.use_pe and self.dwc_pe:
            out = out + self.rpe_table(q)
        self.last_attn = torch.stack(maps, dim=1)  # [B, heads, HW, Ns]
        self.last_pos = pos
        return self.proj_out(out)


# spec keys -> reference (official) keys; the others have the same names
key_map = {
    "offset_dw.weight": "conv_offset.0.weight",
    "offset_dw.bias": "conv_offset.0.bias",
    "offset_norm.weight": "conv_offset.1.norm.weight",
    "offset_norm.bias": "conv_offset.1.norm.bias",
    "offset_proj.weight": "conv_offset.3.weight",
}
