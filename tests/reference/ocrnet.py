"""OCR: object-contextual representations (the OCR module), hand-written reference.

Paper: Yuhui Yuan, Xilin Chen, Jingdong Wang, "Object-Contextual Representations
for Semantic Segmentation", ECCV 2020.
Official code: openseg-group/openseg.pytorch (lib/models/modules/spatial_ocr_block.py,
SpatialGather_Module + SpatialOCR_Module); also HRNet/HRNet-Semantic-Segmentation
(lib/models/seg_hrnet_ocr.py).

Inputs: x[B, C, H, W] pixel representations, probs[B, K, H, W] coarse soft object
regions (logits of the auxiliary head).
  soft object regions   M_k = softmax over the H*W positions of scale * probs_k
  region representation f_k = sum_i M_ki x_i                          [B, K, C]
  pixel-region relation w_ik = softmax_k( phi(x_i)^T psi(f_k) / sqrt(key_channels) )
      phi = f_pixel, psi = f_object: two (1x1 conv + BN + ReLU) each, C -> key_channels
  object context        y_i = rho( sum_k w_ik delta(f_k) )
      delta = f_down: 1x1 conv + BN + ReLU, C -> key_channels
      rho = f_up: 1x1 conv + BN + ReLU, key_channels -> C
  output                conv_bn_dropout(cat[y, x]): 1x1 conv (2C -> out) + BN + ReLU + Dropout2d

Defaults from the official OCRNet heads (openseg ocrnet.py, HRNet-OCR):
in=512 -> out_channels=channels (512), key_channels=256, scale=1 (gather softmax
temperature), dropout=0.05; conv biases present (openseg; HRNet-OCR uses bias=False
before BN, exposed as conv_bias). BN eps/momentum are PyTorch defaults.

The optional down-sampling of the pixels inside the attention block (the official
`scale` argument of ObjectAttentionBlock, 1 in every published model) is not
implemented; use_gt/use_bg training aids are out of scope.

Paper vs code: the paper normalises each object region with a spatial softmax;
openseg does softmax(dim=2) (over positions) which is what is implemented here.
The stored HRNet-OCR SpatialGather_Module applies softmax over dim=1 (over the K
classes) instead; exposed as gather_softmax_dim="classes" and noted as a
disagreement; the default follows the paper and the authors' openseg code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(cin: int, cout: int, bias: bool) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 1, bias=bias), nn.BatchNorm2d(cout), nn.ReLU()]


class OCRNet(nn.Module):
    def __init__(
        self,
        channels: int,
        key_channels: int = 256,
        out_channels: int | None = None,
        scale: float = 1.0,
        dropout: float = 0.05,
        conv_bias: bool = True,
        gather_softmax_dim: str = "spatial",
    ):
        super().__init__()
        if gather_softmax_dim not in ("spatial", "classes"):
            raise ValueError("gather_softmax_dim must be 'spatial' or 'classes'")
        out_channels = channels if out_channels is None else out_channels
        self.key_channels = key_channels
        self.scale = scale
        self.gather_softmax_dim = gather_softmax_dim
        self.f_pixel = nn.Sequential(
            *_conv_bn_relu(channels, key_channels, conv_bias), *_conv_bn_relu(key_channels, key_channels, conv_bias)
        )
        self.f_object = nn.Sequential(
            *_conv_bn_relu(channels, key_channels, conv_bias), *_conv_bn_relu(key_channels, key_channels, conv_bias)
        )
        self.f_down = nn.Sequential(*_conv_bn_relu(channels, key_channels, conv_bias))
        self.f_up = nn.Sequential(*_conv_bn_relu(key_channels, channels, conv_bias))
        self.conv_bn_dropout = nn.Sequential(
            *_conv_bn_relu(2 * channels, out_channels, conv_bias), nn.Dropout2d(dropout)
        )

    def object_regions(self, x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """Soft object region representations f_k, returned as [B, C, K, 1]."""
        b, k = probs.shape[:2]
        p = probs.reshape(b, k, -1)
        p = F.softmax(self.scale * p, dim=2 if self.gather_softmax_dim == "spatial" else 1)
        feats = x.reshape(b, x.shape[1], -1)  # [B, C, N]
        regions = torch.bmm(p, feats.transpose(1, 2))  # [B, K, C]
        return regions.transpose(1, 2).unsqueeze(3)  # [B, C, K, 1]

    def relation(self, x: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """Pixel-region relation w[B, N, K] (rows sum to one)."""
        b = x.shape[0]
        query = self.f_pixel(x).reshape(b, self.key_channels, -1).transpose(1, 2)  # [B, N, Ck]
        key = self.f_object(regions).reshape(b, self.key_channels, -1)  # [B, Ck, K]
        sim = torch.bmm(query, key) * self.key_channels**-0.5
        return F.softmax(sim, dim=-1)

    def forward(self, x: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        if probs.shape[0] != x.shape[0] or probs.shape[2:] != x.shape[2:]:
            raise ValueError(f"probs {tuple(probs.shape)} must match x {tuple(x.shape)} in batch and space")
        b, _, h, w = x.shape
        regions = self.object_regions(x, probs)
        weights = self.relation(x, regions)  # [B, N, K]
        value = self.f_down(regions).reshape(b, self.key_channels, -1)  # [B, Ck, K]
        context = torch.bmm(value, weights.transpose(1, 2)).reshape(b, self.key_channels, h, w)
        context = self.f_up(context)
        return self.conv_bn_dropout(torch.cat([context, x], dim=1))


Reference = OCRNet
