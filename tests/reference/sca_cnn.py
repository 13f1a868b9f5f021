"""SCA-CNN: spatial and channel-wise attention guided by an RNN hidden state.

Paper: Long Chen, Hanwang Zhang, Jun Xiao, Liqiang Nie, Jian Shao, Wei Liu,
Tat-Seng Chua, "SCA-CNN: Spatial and Channel-wise Attention in Convolutional
Networks for Image Captioning", CVPR 2017.
Official code: zjuchenlong/sca-cnn.cvpr17 (Theano, `sca_resnet_branch2b.py`).

Shapes: x[B, C, H, W] (any number of spatial dims works: they are flattened to
m = H*W locations), h[B, hidden] the previous LSTM hidden state h_{t-1}.
Output: the modulated feature map, same shape as x.

Equations (paper, Sec. 3), with V the feature map reshaped to [C, m]:
  channel  b = tanh((W_c (x) v + b_c) (+) W_hc h)      v = mean of V over m, v in R^C
           beta = softmax_C(W'_i b + b'_i)              (x) outer product: each channel
                                                        mean v_c is lifted to R^k
  spatial  a = tanh((W_s V + b_s) (+) W_hs h)           W_s V is a 1x1 convolution
           alpha = softmax_m(W_i a + b_i)
  (+) adds the projected hidden state to every column.
C-S order (the paper's best, the default): beta from V; alpha from the
channel-weighted map f_c(V, beta); output X = V * beta * alpha.
S-C order: alpha from V; beta from f_s(V, alpha); X = V * alpha * beta.

Defaults and where they come from:
- order="channel_spatial": the paper's best (C-S) and the order of the
  official code (beta_1/alpha_1 channel first, then alpha_2 spatial).
- attn_dim k=512: official code (every W*_att is N x 512).
- hidden_size=1000: official code, train(dim=1000) LSTM units.
- rescale=True: official code multiplies the channel-weighted map by C before
  the spatial attention and the final map by m*C ("* 49 * 512"), so the mean
  weight is 1 rather than 1/(m*C). The paper does not mention it (X = V*beta*alpha).
  rescale=False gives the paper's equations exactly.
- W_hc, W_hs have no bias (official code: Wd_att_* has no bias; the paper's
  equations have b_s, b_c on the feature side only). b_i, b'_i exist in both
  paper and code although softmax makes them irrelevant to the output.
- Initialisation: PyTorch defaults (the official code uses N(0, 0.01) weights
  and zero biases; no identity depends on it).

Variants: order in {"channel_spatial", "spatial_channel", "channel", "spatial"}
(the paper's C-S, S-C, C and S ablations); rescale.

Ambiguities: the survey writes the channel branch as W_2 GAP(X) + b_2, which
reads like a C x k matrix; the paper and the official code use an outer product
of a k-vector with the per-channel means (each channel scored independently,
shared weights), which is what is implemented here. The official code's second
attention layer adds the bias c_att to U_att before the dot product (a bug);
not reproduced.
"""

from __future__ import annotations

import torch
from torch import nn

ORDERS = ("channel_spatial", "spatial_channel", "channel", "spatial")


class SCACNN(nn.Module):
    def __init__(
        self,
        channels: int,
        hidden_size: int = 1000,
        attn_dim: int = 512,
        order: str = "channel_spatial",
        rescale: bool = True,
    ):
        super().__init__()
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        self.channels = channels
        self.hidden_size = hidden_size
        self.attn_dim = attn_dim
        self.order = order
        self.rescale = rescale
        use_c = order != "spatial"
        use_s = order != "channel"
        # registered in data-flow order
        if order == "spatial_channel":
            self._make_spatial()
            self._make_channel()
        else:
            if use_c:
                self._make_channel()
            if use_s:
                self._make_spatial()

    def _make_channel(self) -> None:
        self.W_c = nn.Linear(1, self.attn_dim)  # outer product with the channel means, + b_c
        self.W_hc = nn.Linear(self.hidden_size, self.attn_dim, bias=False)
        self.W_ic = nn.Linear(self.attn_dim, 1)  # W'_i, b'_i

    def _make_spatial(self) -> None:
        self.W_s = nn.Linear(self.channels, self.attn_dim)  # 1x1 conv, + b_s
        self.W_hs = nn.Linear(self.hidden_size, self.attn_dim, bias=False)
        self.W_is = nn.Linear(self.attn_dim, 1)  # W_i, b_i

    def channel_weights(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """beta[B, C] from features v[B, C, m] and h[B, hidden]; sums to 1 over C."""
        mean = v.mean(dim=2, keepdim=True)  # [B, C, 1]
        b = torch.tanh(self.W_c(mean) + self.W_hc(h).unsqueeze(1))  # [B, C, k]
        return torch.softmax(self.W_ic(b).squeeze(-1), dim=1)

    def spatial_weights(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """alpha[B, m] from features v[B, C, m] and h[B, hidden]; sums to 1 over m."""
        a = torch.tanh(self.W_s(v.transpose(1, 2)) + self.W_hs(h).unsqueeze(1))  # [B, m, k]
        return torch.softmax(self.W_is(a).squeeze(-1), dim=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        v = x.reshape(b, c, -1)
        m = v.shape[2]
        cs = float(c) if self.rescale else 1.0
        ms = float(m) if self.rescale else 1.0
        if self.order == "channel_spatial":
            beta = self.channel_weights(v, h)
            vc = v * beta.unsqueeze(2) * cs
            alpha = self.spatial_weights(vc, h)
            out = vc * alpha.unsqueeze(1) * ms
        elif self.order == "spatial_channel":
            alpha = self.spatial_weights(v, h)
            vs = v * alpha.unsqueeze(1) * ms
            beta = self.channel_weights(vs, h)
            out = vs * beta.unsqueeze(2) * cs
        elif self.order == "channel":
            out = v * self.channel_weights(v, h).unsqueeze(2) * cs
        else:
            out = v * self.spatial_weights(v, h).unsqueeze(1) * ms
        return out.reshape(x.shape)


Reference = SCACNN
