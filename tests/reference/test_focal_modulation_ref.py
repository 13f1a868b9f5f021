"""Tests for the focal modulation reference: shapes, train/eval, float64 gradcheck, and properties of
FocalNet's equations (depthwise taps = a depthwise conv, the global level, the gate sum)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.reference.focal_modulation import DepthwiseTaps, FocalModulation
from tests.reference.harness import forward_backward, gradcheck, train_and_eval

torch.set_num_threads(1)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize(
    "shape,params",
    [
        ((2, 7, 9, 8), {}),
        ((1, 1, 3, 8), {"focal_level": 3, "use_post_norm": True}),
        ((3, 4, 4, 6), {"focal_level": 1, "focal_window": 5, "bias": False, "normalize_modulator": True}),
    ],
)
def test_shapes_train_eval(shape, params):
    m = FocalModulation(shape[-1], **params).double()
    assert train_and_eval(m, rand(*shape)).shape == shape


def test_gradcheck():
    gradcheck(FocalModulation(4, focal_level=2, use_post_norm=True, normalize_modulator=True), rand(2, 3, 4, 4))


def test_taps_are_a_depthwise_conv():
    layer = DepthwiseTaps(5, 5).double()
    z = rand(2, 6, 7, 5)
    want = F.conv2d(z.permute(0, 3, 1, 2), layer.weight, padding=2, groups=5).permute(0, 2, 3, 1)
    torch.testing.assert_close(layer(z), want)


def test_global_level_alone_gives_a_position_independent_modulator():
    """With every local gate at 0 and the global gate at 1 (f's gate rows zeroed, bias 0 / 1), the
    modulator h(GELU(mean Z^L)) is the same at every position (Eq. 8 with only l = L + 1)."""
    m = FocalModulation(6, focal_level=2).double()
    with torch.no_grad():
        m.f.weight[12:].zero_(), m.f.bias[12:14].zero_(), m.f.bias[14].fill_(1.0)
    forward_backward(m, rand(2, 5, 4, 6))
    mod = m.last_modulator
    torch.testing.assert_close(mod, mod[:, :1, :1].expand_as(mod))


def test_levels_sum_with_their_gates():
    """Doubling every gate doubles Z^out, hence h(Z^out) - h(0): the aggregation is linear in the gates."""
    m = FocalModulation(4, focal_level=2).double()
    x = rand(1, 5, 5, 4)
    m(x)
    a = m.last_modulator - m.h.bias
    with torch.no_grad():
        m.f.weight[8:].mul_(2), m.f.bias[8:].mul_(2)
    m(x)
    torch.testing.assert_close(m.last_modulator - m.h.bias, 2 * a)


def test_channels_first_is_the_permuted_channels_last():
    """layout channels_first computes the same function on [B, C, H, W]."""
    a = FocalModulation(6, focal_level=2, use_post_norm=True).double()
    b = FocalModulation(6, focal_level=2, use_post_norm=True, layout="channels_first").double()
    b.load_state_dict(a.state_dict())
    x = rand(2, 5, 7, 6)
    torch.testing.assert_close(b(x.permute(0, 3, 1, 2)), a(x).permute(0, 3, 1, 2))
