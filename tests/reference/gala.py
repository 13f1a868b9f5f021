"""GALA: global-and-local attention.

Paper: Drew Linsley, Dan Shiebler, Sven Eberhardt, Thomas Serre, "Learning what
and where to attend", ICLR 2019.
Official code: serre-lab/gala_tpu (TensorFlow; `resnet_helpers.py`
LayerHelper.feature_attention_gala, called from `resnet_v2_model.py` with the
"GALA-v2_50" settings of `resnet_main.py`).

Shapes: x[B, C, H, W] -> [B, C, H, W].

Paper (as also given by the survey):
  G = W2 ReLU(W1 GAP(x))                          global, [B, C, 1, 1] (SE without sigmoid)
  S = conv2_1x1(ReLU(conv1_1x1(x)))               local,  [B, 1, H, W]
  A = tanh(a . (G + S) + m . (G . S))             a, m in R^C learnable
  y = A . x
with W1: C -> C/r, conv1: C -> C/r, conv2: C/r -> 1.

Defaults follow the official code (GALA-v2 configuration):
- reduction r=4 (feature_attention_gala r=4; the SE path uses the same r);
- extra_convs=1, extra_kernel=5: one extra 5x5 conv (C/r -> C/r, bias, ReLU)
  between the two 1x1 convs of the local path (GALA-v2 passes extra_convs=1);
- squash="sigmoid": the Resnet class's squash=tf.sigmoid; the paper writes tanh;
- global_out_relu=True: the SE path uses tf.contrib.layers.fully_connected, whose
  default activation is ReLU, so the code's G is ReLU(W2 ReLU(W1 GAP(x))); the
  paper has no activation on W2;
- all convs and FCs have biases; no BatchNorm (use_batchnorm=False);
- a, m ("alpha", "beta" in the code, shape [1,1,1,C]) initialised by TF's
  variance_scaling_initializer with fan_in 1: truncated normal, std 1/0.8796 at
  2 standard deviations (reproduced); other weights use PyTorch defaults.
`GALA.paper(channels)` builds the paper's form (tanh, no extra conv, no ReLU on G).

Variants: interaction in {"both", "additive", "multiplicative"} (official
code's switch: a(G+S) + m(G.S), G+S, G.S; only "both" has a and m); squash.
"""

from __future__ import annotations

import torch
from torch import nn

_TF_TRUNC_STD = 1.0 / 0.87962566103423978  # TF variance_scaling truncated-normal correction


class GALA(nn.Module):
    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        extra_convs: int = 1,
        extra_kernel: int = 5,
        squash: str = "sigmoid",
        global_out_relu: bool = True,
        interaction: str = "both",
    ):
        super().__init__()
        if squash not in ("sigmoid", "tanh"):
            raise ValueError(f"squash must be 'sigmoid' or 'tanh', got {squash!r}")
        if interaction not in ("both", "additive", "multiplicative"):
            raise ValueError(f"interaction must be both/additive/multiplicative, got {interaction!r}")
        mid = channels // reduction
        if mid < 1:
            raise ValueError(f"channels // reduction must be >= 1 ({channels} // {reduction})")
        self.squash = squash
        self.global_out_relu = global_out_relu
        self.interaction = interaction
        # global (SE) path
        self.fc1 = nn.Linear(channels, mid)
        self.fc2 = nn.Linear(mid, channels)
        # local (spatial) path
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.extra = nn.ModuleList(
            nn.Conv2d(mid, mid, extra_kernel, padding=extra_kernel // 2) for _ in range(extra_convs)
        )
        self.conv2 = nn.Conv2d(mid, 1, 1)
        if interaction == "both":
            self.a = nn.Parameter(torch.empty(channels))
            self.m = nn.Parameter(torch.empty(channels))
            for p in (self.a, self.m):
                nn.init.trunc_normal_(p, std=_TF_TRUNC_STD, a=-2 * _TF_TRUNC_STD, b=2 * _TF_TRUNC_STD)

    @classmethod
    def paper(cls, channels: int, **kwargs) -> GALA:
        """The paper's equations: tanh, two 1x1 convs on the local path, linear W2."""
        kw = dict(extra_convs=0, squash="tanh", global_out_relu=False)
        kw.update(kwargs)
        return cls(channels, **kw)

    def global_path(self, x: torch.Tensor) -> torch.Tensor:
        g = self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3)))))
        if self.global_out_relu:
            g = torch.relu(g)
        return g[:, :, None, None]

    def local_path(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.conv1(x))
        for conv in self.extra:
            s = torch.relu(conv(s))
        return self.conv2(s)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """A[B, C, H, W]."""
        g, s = self.global_path(x), self.local_path(x)
        if self.interaction == "both":
            z = self.a[:, None, None] * (g + s) + self.m[:, None, None] * (g * s)
        elif self.interaction == "additive":
            z = g + s
        else:
            z = g * s
        return torch.sigmoid(z) if self.squash == "sigmoid" else torch.tanh(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


Reference = GALA
