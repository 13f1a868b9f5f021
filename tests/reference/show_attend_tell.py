"""Soft and hard attention of "Show, Attend and Tell", hand-written eager reference.

Paper: Kelvin Xu, Jimmy Ba, Ryan Kiros, Kyunghyun Cho, Aaron Courville, Ruslan
Salakhutdinov, Richard Zemel, Yoshua Bengio, "Show, Attend and Tell: Neural Image Caption
Generation with Visual Attention", ICML 2015.
Official code: https://github.com/kelvinxu/arctic-captions (Theano; `capgen.py`,
`lstm_cond_layer`).

Inputs: annotation vectors a[B, L, D] and the previous decoder state h[B, n].
Output: the context vector z[B, D].

    e_i   = U_att . tanh(Wc_att a_i + Wd_att h) + c          f_att, an MLP (eq. 4)
    alpha = softmax_L(e / temperature)                        (eq. 5)
    soft: z = sum_i alpha_i a_i                               (eq. 13, "deterministic")
    hard: s ~ Multinoulli(alpha), z = a_s                     (eq. 8-9, "stochastic")
    selector: z <- sigmoid(W_sel h + b_sel) * z               (section 4.2.1, the gate beta)

The block is one attention step of the captioning decoder (the catalog's block); the LSTM
that produces h is outside it.

Constructor: `channels` is D (the annotation width), `hidden_size` is n.

Defaults (official `capgen.train` defaults unless stated):
- hidden_size = 1000 (`dim=1000`); attention hidden width = D (the code projects the
  context to D: Wc_att is D x D).
- n_layers_att = 1 (`n_layers_att=1`); more layers add D x D tanh layers after Wc_att
  (the COCO example script uses 2).
- selector = False (`selector=False`; the COCO example script and the paper's section
  4.2.1 use it: pass selector=True).
- attention = "soft". The official train() default is attn_type="stochastic" while the
  example script that "reproduces the soft alignment model for MS COCO" uses
  "deterministic"; the catalog lists soft first and the soft model is the
  differentiable one, so soft is the default here and hard is a variant.
- Biases: Wc_att has a bias (b_att), Wd_att has none, U_att has the scalar bias c_tt,
  W_sel has b_sel; this is the code's parametrisation.
- Hard mode, training: as in the code (and section 4.1), with probability
  semi_sampling_p = 0.5 the sampled one-hot is used and otherwise alpha itself (one
  Bernoulli draw per forward call, as the code draws one per minibatch); temperature = 1.
  Eval mode: the code's sampler (sampling=False, argmax=False) uses the expectation
  alpha; hard_eval="argmax" picks the most probable location instead.
  No gradient flows to the attention MLP through a sample (the paper trains it with
  REINFORCE); the sampled one-hot is available from `sample`.
- Randomness comes only from the `generator` argument of forward.
"""

from __future__ import annotations

import torch
from torch import nn


class SoftHardAttention(nn.Module):
    def __init__(
        self,
        channels: int,
        hidden_size: int = 1000,
        attention: str = "soft",
        selector: bool = False,
        n_layers_att: int = 1,
        semi_sampling_p: float = 0.5,
        temperature: float = 1.0,
        hard_eval: str = "expectation",
    ):
        super().__init__()
        if attention not in ("soft", "hard"):
            raise ValueError(f"show_attend_tell: attention must be 'soft' or 'hard', got {attention!r}")
        if hard_eval not in ("expectation", "argmax"):
            raise ValueError(f"show_attend_tell: hard_eval must be 'expectation' or 'argmax', got {hard_eval!r}")
        self.channels = channels
        self.hidden_size = hidden_size
        self.mode = attention
        self.semi_sampling_p = semi_sampling_p
        self.temperature = temperature
        self.hard_eval = hard_eval
        self.Wc_att = nn.Linear(channels, channels)
        self.att_layers = nn.ModuleList(nn.Linear(channels, channels) for _ in range(n_layers_att - 1))
        self.Wd_att = nn.Linear(hidden_size, channels, bias=False)
        self.U_att = nn.Linear(channels, 1)
        self.W_sel = nn.Linear(hidden_size, 1) if selector else None

    def weights(self, a: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """alpha[B, L], summing to one over the L locations."""
        pctx = self.Wc_att(a)
        for layer in self.att_layers:
            pctx = torch.tanh(layer(pctx))
        e = self.U_att(torch.tanh(pctx + self.Wd_att(h)[:, None, :])).squeeze(-1)
        return torch.softmax(e / self.temperature, dim=-1)

    @staticmethod
    def sample(alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A one-hot draw s[B, L] from Multinoulli(alpha)."""
        idx = torch.multinomial(alpha.detach(), 1, generator=generator)
        return torch.zeros_like(alpha).scatter_(1, idx, 1.0)

    def forward(self, a: torch.Tensor, h: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if a.dim() != 3 or h.dim() != 2 or a.shape[0] != h.shape[0]:
            raise ValueError(
                f"show_attend_tell: expected a[B, L, D] and h[B, n], got {tuple(a.shape)}, {tuple(h.shape)}"
            )
        alpha = self.weights(a, h)
        if self.mode == "soft":
            w = alpha
        elif self.training:
            use_sample = torch.rand((), generator=generator).item() < self.semi_sampling_p
            w = self.sample(alpha, generator) if use_sample else alpha
        elif self.hard_eval == "argmax":
            w = torch.zeros_like(alpha).scatter_(1, alpha.argmax(dim=1, keepdim=True), 1.0)
        else:
            w = alpha
        z = torch.einsum("bl,bld->bd", w, a)
        if self.W_sel is not None:
            z = torch.sigmoid(self.W_sel(h)) * z
        return z


Reference = SoftHardAttention
