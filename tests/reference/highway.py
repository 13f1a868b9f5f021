"""Highway layer, hand-written eager reference.

Papers: Rupesh Kumar Srivastava, Klaus Greff, Jürgen Schmidhuber, "Highway Networks",
ICML 2015 Deep Learning Workshop (arXiv:1505.00387); extended as "Training Very Deep
Networks", NeurIPS 2015.
Official code: the authors' Brainstorm library (https://github.com/IDSIA/brainstorm) and
their Caffe convolutional highway layers; no single reference repository.

    H(x) = relu(W_H x + b_H)                 plain (transform) layer
    T(x) = sigmoid(W_T x + b_T)              transform gate, carry gate C = 1 - T
    y    = H(x) · T(x) + x · (1 - T(x))

Defaults:
- gate_bias=-2.0: b_T is initialised to a negative constant so the layer starts out
  carrying its input (the paper suggests -1, -3, ...; -2 is the value commonly attributed
  to the papers' experiments, e.g. gluonnlp's HighwayBias default).
- activation='relu' for H (a rectified-linear plain layer; the papers stress that the
  gating works with various activations, so 'tanh' and 'sigmoid' are accepted).
- kernel_size=1: the fully connected highway layer applied at every position (the
  catalog's "linear -> sigmoid gate"), implemented with nn.Linear on the channel axis, so
  it accepts x[B, C] and x[B, C, *spatial] of spatial rank 1-3 with [C, C] weights.
  kernel_size > 1 is the papers' convolutional highway layer (zero padding keeps the
  size; both H and T are k x k convolutions); it needs 2-D maps x[B, C, H, W].
- Weight initialisation: PyTorch defaults for W_H, W_T and b_H (the papers only require
  zero-mean weights); b_T = gate_bias.

Ambiguity: the papers leave the form of H open (any non-linear transform); the single-layer
affine + activation used in their experiments is the one implemented. Dimensionality must
be preserved (input channels = output channels), as the papers require.
"""

from __future__ import annotations

import torch
from torch import nn

_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


class Highway(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 1, gate_bias: float = -2.0, activation: str = "relu"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.activation = activation
        if kernel_size == 1:
            self.H = nn.Linear(channels, channels)
            self.T = nn.Linear(channels, channels)
        else:
            self.H = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
            self.T = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        nn.init.constant_(self.T.bias, gate_bias)

    def _per_position(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == 1:
            return layer(x.movedim(1, -1)).movedim(-1, 1)
        return layer(x)

    def transform_gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self._per_position(self.T, x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _ACTIVATIONS[self.activation](self._per_position(self.H, x))
        t = self.transform_gate(x)
        return h * t + x * (1.0 - t)


Reference = Highway
