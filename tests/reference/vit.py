"""ViT: the vision-transformer attention block (patchify + encoder block), reference.

Paper: Alexey Dosovitskiy, Lucas Beyer, Alexander Kolesnikov, Dirk Weissenborn,
Xiaohua Zhai, Thomas Unterthiner, Mostafa Dehghani, Matthias Minderer, Georg
Heigold, Sylvain Gelly, Jakob Uszkoreit, Neil Houlsby, "An Image is Worth 16x16
Words: Transformers for Image Recognition at Scale", ICLR 2021.
Official code: google-research/vision_transformer (vit_jax/models_vit.py, JAX/Flax).

The paper defines a whole network; per the catalog this reference is its attention
block with the block's own input, an image (or feature map) x[B, C, H, W]:
  tokens = patch embedding (conv p x p, stride p, VALID) -> [B, h*w, D]
  prepend a learned class token (cls_token=True, official classifier='token'),
  add learned position embeddings, dropout
  depth x encoder block (pre-LN):
      x = x + Dropout(MHSA(LN(x)))        MHSA: separate q, k, v, out projections
                                          with bias, softmax(q k^T / sqrt(D/heads))
      x = x + MLP(LN(x))                  MLP: Dense(mlp_dim) - GELU - Dropout - Dense - Dropout
  encoder_norm: final LayerNorm (final_norm=True, as the official Encoder)
Output: tokens [B, 1 + h*w, D] (or [B, h*w, D] without the class token).

Defaults (ViT-B/16, official configs/models.py): patch_size=16, hidden_size=768,
num_heads=12, mlp_dim=3072, dropout=0.0, attention_dropout=0.0, image_size=224 (the
position embedding has (224/16)^2 + 1 entries and fixes the grid), depth=1 (one
encoder block: the "attention block"; ViT-B stacks 12), LayerNorm eps=1e-6 (Flax
default), GELU with the tanh approximation (Flax nn.gelu default; the paper only
says GELU; gelu_approximate="none" gives the exact erf form), channels=3.
Initialisation as the official code: attention and MLP kernels Xavier-uniform,
attention biases 0, MLP biases N(0, 1e-6), position embedding N(0, 0.02), class
token 0, patch-embedding conv LeCun-normal with zero bias, LayerNorm 1/0.

Variants: cls_token (False = classifier 'gap'/'unpooled', no class token), depth,
final_norm, gelu_approximate. Inputs whose size is not a multiple of the patch are
cropped by the VALID convolution, as in the official code; the patch grid must
equal image_size // patch_size (position embeddings are not resized here).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class EncoderBlock(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        mlp_dim: int,
        dropout: float,
        attention_dropout: float,
        ln_eps: float,
        gelu_approximate: str,
    ):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        self.num_heads = num_heads
        self.gelu_approximate = gelu_approximate
        self.ln1 = nn.LayerNorm(hidden_size, eps=ln_eps)
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.attn_drop = nn.Dropout(attention_dropout)
        self.drop = nn.Dropout(dropout)
        self.ln2 = nn.LayerNorm(hidden_size, eps=ln_eps)
        self.fc1 = nn.Linear(hidden_size, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, hidden_size)
        for lin in (self.query, self.key, self.value, self.out):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        for lin in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.normal_(lin.bias, std=1e-6)

    def attention_weights(self, t: torch.Tensor) -> torch.Tensor:
        """Softmax attention [B, heads, T, T] of the (already normalised) tokens t."""
        b, n, d = t.shape
        hd = d // self.num_heads
        q = self.query(t).reshape(b, n, self.num_heads, hd).transpose(1, 2)
        k = self.key(t).reshape(b, n, self.num_heads, hd).transpose(1, 2)
        return F.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        hd = d // self.num_heads
        t = self.ln1(x)
        a = self.attn_drop(self.attention_weights(t))
        v = self.value(t).reshape(b, n, self.num_heads, hd).transpose(1, 2)
        y = self.out((a @ v).transpose(1, 2).reshape(b, n, d))
        x = x + self.drop(y)
        z = F.gelu(self.fc1(self.ln2(x)), approximate=self.gelu_approximate)
        z = self.drop(self.fc2(self.drop(z)))
        return x + z


class ViT(nn.Module):
    def __init__(
        self,
        channels: int = 3,
        image_size=224,
        patch_size=16,
        hidden_size: int = 768,
        num_heads: int = 12,
        mlp_dim: int = 3072,
        depth: int = 1,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        cls_token: bool = True,
        final_norm: bool = True,
        ln_eps: float = 1e-6,
        gelu_approximate: str = "tanh",
    ):
        super().__init__()
        self.patch_size = _pair(patch_size)
        image_size = _pair(image_size)
        self.grid = (image_size[0] // self.patch_size[0], image_size[1] // self.patch_size[1])
        n_tokens = self.grid[0] * self.grid[1] + (1 if cls_token else 0)
        self.embedding = nn.Conv2d(channels, hidden_size, self.patch_size, stride=self.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden_size)) if cls_token else None
        self.pos_embedding = nn.Parameter(torch.randn(1, n_tokens, hidden_size) * 0.02)
        self.pos_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(hidden_size, num_heads, mlp_dim, dropout, attention_dropout, ln_eps, gelu_approximate)
            for _ in range(depth)
        )
        self.encoder_norm = nn.LayerNorm(hidden_size, eps=ln_eps) if final_norm else None
        fan_in = channels * self.patch_size[0] * self.patch_size[1]
        # LeCun normal: truncated normal with variance 1/fan_in (Flax default_kernel_init).
        std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
        nn.init.trunc_normal_(self.embedding.weight, std=std, a=-2 * std, b=2 * std)
        nn.init.zeros_(self.embedding.bias)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with class token and position embedding, before the blocks."""
        t = self.embedding(x)  # [B, D, h, w]
        if tuple(t.shape[2:]) != self.grid:
            raise ValueError(f"patch grid {tuple(t.shape[2:])} != {self.grid} fixed by image_size")
        t = t.flatten(2).transpose(1, 2)  # [B, h*w, D], row-major patches
        if self.cls is not None:
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
        return self.pos_drop(t + self.pos_embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.tokens(x)
        for blk in self.blocks:
            t = blk(t)
        return self.encoder_norm(t) if self.encoder_norm is not None else t


Reference = ViT
