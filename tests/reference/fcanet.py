"""Multi-spectral channel attention (FcaNet), hand-written eager reference.

Paper: Zequn Qin, Pengyi Zhang, Fei Wu, Xi Li, "FcaNet: Frequency Channel Attention
Networks", ICCV 2021.
Official code: https://github.com/cfzd/FcaNet (model/layer.py, MultiSpectralAttentionLayer).

    x is split along channels into n equal parts (n = number of selected frequencies);
    part i is pooled with the 2-D DCT basis of frequency (u_i, v_i):
        Freq_c = Σ_{h,w} x_{c,h,w} · B^{u_i}_h(H) · B^{v_i}_w(W)      for c in part i
        B^u_t(N) = cos(π u (t + 1/2) / N) / sqrt(N) · (sqrt(2) if u > 0 else 1)
    s = sigmoid(W2 relu(W1 Freq))      (no biases)          y = x · s

Defaults (official code):
- dct_h = dct_w = 7 and freq_sel_method='top16' (the 16 best single frequencies of the
  paper's 7x7 frequency ablation, as the official tables list them). Frequency indices are
  given on a 7x7 grid and scaled by dct_h // 7 (and dct_w // 7) for larger DCT sizes, as the
  official code does. The official ResNets use dct size 56/28/14/7 per stage (the feature
  size); the spec's single default is 7.
- When the input is not dct_h x dct_w it is first adaptive-average-pooled to that size
  (official behaviour, used there for detection/segmentation inputs).
- reduction=16, both FC layers without bias (official nn.Linear(..., bias=False)).
- The DCT filter bank is a fixed buffer `dct_weight` [C, dct_h, dct_w], not a parameter
  (the official "fixed DCT init" choice).
- Selection tables 'top', 'low', 'bot' with 1, 2, 4, 8, 16 or 32 frequencies, as the
  paper's ablation; channels must be divisible by the number of frequencies.

Paper vs code: the paper writes the DCT basis without normalisation,
cos(π h/H (i + 1/2)) cos(π w/W (j + 1/2)); the code uses the orthonormal DCT-II scaling
(1/sqrt(N), times sqrt(2) for non-zero frequencies). With it the lowest frequency is
GAP · sqrt(HW) rather than GAP · HW. The reference follows the code.
Only 2-D feature maps are supported.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Frequency (u, v) indices on a 7x7 grid, ordered best-first for 'top', lowest-first for
# 'low' and worst-first for 'bot' (from the paper's single-frequency ablation).
_FREQ_TABLES = {
    "top": (
        [0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1],
        [0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3],
    ),
    "low": (
        [0, 0, 1, 1, 0, 2, 2, 1, 2, 0, 3, 4, 0, 1, 3, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4],
        [0, 1, 0, 1, 2, 0, 1, 2, 2, 3, 0, 0, 4, 3, 1, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3],
    ),
    "bot": (
        [6, 1, 3, 3, 2, 4, 1, 2, 4, 4, 5, 1, 4, 6, 2, 5, 6, 1, 6, 2, 2, 4, 3, 3, 5, 5, 6, 2, 5, 5, 3, 6],
        [6, 4, 4, 6, 6, 3, 1, 4, 4, 5, 6, 5, 2, 2, 5, 1, 4, 3, 5, 0, 3, 1, 1, 2, 4, 2, 1, 1, 5, 3, 3, 3],
    ),
}


def frequency_indices(method: str) -> tuple[list[int], list[int]]:
    kind, count = method[:3], method[3:]
    if kind not in _FREQ_TABLES or count not in {"1", "2", "4", "8", "16", "32"}:
        raise ValueError(f"unknown frequency selection {method!r}")
    us, vs = _FREQ_TABLES[kind]
    return us[: int(count)], vs[: int(count)]


def dct_basis_1d(freq: int, size: int) -> torch.Tensor:
    """Orthonormal DCT-II basis vector of frequency `freq` over `size` samples (float64)."""
    t = torch.arange(size, dtype=torch.float64)
    basis = torch.cos(math.pi * freq * (t + 0.5) / size) / math.sqrt(size)
    return basis * math.sqrt(2.0) if freq else basis


def dct_filters(channels: int, height: int, width: int, us: list[int], vs: list[int]) -> torch.Tensor:
    if channels % len(us):
        raise ValueError(f"channels ({channels}) must be divisible by the number of frequencies ({len(us)})")
    part = channels // len(us)
    bank = torch.empty(channels, height, width, dtype=torch.float64)
    for i, (u, v) in enumerate(zip(us, vs)):
        bank[i * part : (i + 1) * part] = torch.outer(dct_basis_1d(u, height), dct_basis_1d(v, width))
    return bank.float()


class MultiSpectralAttention(nn.Module):
    def __init__(
        self, channels: int, reduction: int = 16, dct_h: int = 7, dct_w: int = 7, freq_sel_method: str = "top16"
    ):
        super().__init__()
        us, vs = frequency_indices(freq_sel_method)
        us = [u * (dct_h // 7) for u in us]
        vs = [v * (dct_w // 7) for v in vs]
        self.channels = channels
        self.dct_h, self.dct_w = dct_h, dct_w
        self.frequencies = list(zip(us, vs))
        self.register_buffer("dct_weight", dct_filters(channels, dct_h, dct_w, us, vs))
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, channels, bias=False)

    def frequency_pool(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.dct_h, self.dct_w):
            x = F.adaptive_avg_pool2d(x, (self.dct_h, self.dct_w))
        return (x * self.dct_weight).sum(dim=(2, 3))

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(self.frequency_pool(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)[:, :, None, None]


Reference = MultiSpectralAttention
