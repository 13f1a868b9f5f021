"""STA-LSTM: spatial (joint) and temporal (frame) attention for skeleton sequences.

Paper: Sijie Song, Cuiling Lan, Junliang Xing, Wenjun Zeng, Jiaying Liu, "An
End-to-End Spatio-Temporal Attention Model for Human Action Recognition from
Skeleton Data", AAAI 2017. No official code was released (none found).

Shapes: x[B, T, J, D] (T frames, J joints of D coordinates), h the previous
hidden state of the attention LSTMs: h[B, T, hidden] (h_{t-1} for every frame t)
or h[B, hidden] (one state broadcast to every frame). An optional h_temporal
(same shapes) is the hidden state of the temporal-attention LSTM; the paper's
spatial and temporal attention networks each have their own LSTM, and when
h_temporal is None the same h serves both.
Output: y[B, T, J, D] = beta_t * alpha_{t,j} * x_{t,j}, the joints weighted by the
spatial attention and the frames by the temporal attention.

Paper, Sec. 3, with x_t = (x_{t,1}, ..., x_{t,J}) flattened to J*D values:
  spatial  s_t = U_s tanh(W_xs x_t + W_hs h^s_{t-1} + b_s) + b_us   (J scores)
           alpha_{t,j} = exp(s_{t,j}) / sum_k exp(s_{t,k})
  temporal beta_t = ReLU(w_x x_t + w_h h~_{t-1} + b~)              (a scalar >= 0,
           ReLU instead of a normalisation, "for ease of optimization")
In the full model alpha re-weights the input of the main LSTM and beta its
outputs z_t (o = sum_t beta_t z_t); the block here applies both to x, which is
the attention mechanism without the main LSTM.

Defaults: joints=25, joint_dim=3 (NTU RGB+D skeletons, the paper's largest
benchmark); hidden_size=100 (the paper's attention LSTMs have 100 neurons);
attn_dim=100 for the hidden layer of the spatial scoring MLP (not stated in
the paper: chosen equal to the LSTM size). The temporal branch is the paper's
single linear unit + ReLU. Biases: b_s on W_xs, b_us on U_s, b~ on w_x; W_hs and
w_h have none (one bias per sum, as in the paper's equations). Initialisation:
PyTorch defaults.
"""

from __future__ import annotations

import torch
from torch import nn


class STALSTM(nn.Module):
    def __init__(
        self,
        joints: int = 25,
        joint_dim: int = 3,
        hidden_size: int = 100,
        attn_dim: int = 100,
    ):
        super().__init__()
        self.joints = joints
        self.joint_dim = joint_dim
        self.hidden_size = hidden_size
        n_in = joints * joint_dim
        # spatial attention (data flow: x, h -> tanh -> U_s -> softmax over joints)
        self.W_xs = nn.Linear(n_in, attn_dim)  # + b_s
        self.W_hs = nn.Linear(hidden_size, attn_dim, bias=False)
        self.U_s = nn.Linear(attn_dim, joints)  # + b_us
        # temporal attention
        self.w_x = nn.Linear(n_in, 1)  # + b~
        self.w_h = nn.Linear(hidden_size, 1, bias=False)

    def _h(self, h: torch.Tensor, t: int) -> torch.Tensor:
        return h.unsqueeze(1).expand(-1, t, -1) if h.dim() == 2 else h

    def spatial_weights(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """alpha[B, T, J], sums to 1 over joints."""
        xt = x.flatten(2)
        s = self.U_s(torch.tanh(self.W_xs(xt) + self.W_hs(self._h(h, x.shape[1]))))
        return torch.softmax(s, dim=-1)

    def temporal_weights(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """beta[B, T] >= 0."""
        xt = x.flatten(2)
        return torch.relu(self.w_x(xt) + self.w_h(self._h(h, x.shape[1]))).squeeze(-1)

    def forward(self, x: torch.Tensor, h: torch.Tensor, h_temporal: torch.Tensor | None = None):
        if x.shape[2:] != (self.joints, self.joint_dim):
            raise ValueError(f"expected x[B, T, {self.joints}, {self.joint_dim}], got {tuple(x.shape)}")
        alpha = self.spatial_weights(x, h)
        beta = self.temporal_weights(x, h if h_temporal is None else h_temporal)
        return x * alpha.unsqueeze(-1) * beta[:, :, None, None]


Reference = STALSTM
