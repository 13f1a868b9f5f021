"""Tests for the outlook attention reference: shapes, train/eval, float64 gradcheck, and properties of
VOLO's equations (the fold counts, one output position written out from Eqs. 2-4, the ceil-mode pool)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.reference.harness import forward_backward, gradcheck, train_and_eval
from tests.reference.outlook_attention import OutlookAttention

torch.set_num_threads(1)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize(
    "shape,params",
    [
        ((2, 7, 9, 12), {"num_heads": 2}),
        ((1, 1, 2, 12), {"num_heads": 3, "stride": 1}),
        ((3, 4, 6, 12), {"num_heads": 4, "stride": 3, "qkv_bias": True}),
        ((2, 5, 5, 8), {"num_heads": 1, "kernel_size": 5, "stride": 2}),
    ],
)
def test_shapes_train_eval(shape, params):
    m = OutlookAttention(shape[-1], **params).double()
    assert train_and_eval(m, rand(*shape)).shape == shape
    h, w = math.ceil(shape[1] / m.s), math.ceil(shape[2] / m.s)
    assert m.last_weights.shape == (shape[0], h, w, m.heads, m.k**2, m.k**2)


def test_gradcheck():
    gradcheck(OutlookAttention(4, num_heads=2, stride=2, qkv_bias=True), rand(1, 5, 3, 4))


def _identity_mixing(m):
    """attn logits that put (almost) all weight on the slot itself: every window returns its values."""
    kk = m.k * m.k
    with torch.no_grad():
        m.attn.weight.zero_()
        m.attn.bias.copy_((torch.eye(kk, dtype=m.attn.bias.dtype) * 200.0).repeat(m.heads, 1, 1).reshape(-1))
        m.proj.weight.copy_(torch.eye(m.proj.weight.shape[0])), m.proj.bias.zero_()
    return m


def test_fold_sums_each_position_once_per_covering_window():
    """Identity mixing at stride 1: position (r, c) gets v times the number of K x K windows that cover
    it (K^2 inside, fewer at the borders), the overlap sum of Eq. 4."""
    m = _identity_mixing(OutlookAttention(6, num_heads=2, stride=1).double())
    x = rand(2, 5, 4, 6)
    y = m(x)
    cover_h = torch.tensor([2, 3, 3, 3, 2], dtype=torch.float64)
    cover_w = torch.tensor([2, 3, 3, 2], dtype=torch.float64)
    torch.testing.assert_close(y, m.v(x) * (cover_h[:, None] * cover_w[None, :])[None, :, :, None])


def test_one_position_written_out():
    """Output (r, c) before proj = sum over windows (i, j) covering it of sum_l A[i, j, slot, l] v[l]
    (Eqs. 3-4), slot = its offset in the window; stride 2, two heads."""
    m = OutlookAttention(4, num_heads=2, stride=2).double()
    x = rand(1, 5, 6, 4)
    with torch.no_grad():
        m.proj.weight.copy_(torch.eye(4)), m.proj.bias.zero_()
    y = m(x)
    a, v = m.last_weights[0], m.v(x)[0]
    k, s, p, d = 3, 2, 1, 2
    r, c = 2, 3
    want = torch.zeros(4, dtype=torch.float64)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            dr, dc = r - (i * s - p), c - (j * s - p)
            if not (0 <= dr < k and 0 <= dc < k):
                continue
            for head in range(2):
                for l in range(k * k):
                    rr, cc = i * s - p + l // k, j * s - p + l % k
                    if 0 <= rr < 5 and 0 <= cc < 6:
                        want[head * d : (head + 1) * d] += (
                            a[i, j, head, dr * k + dc, l] * v[rr, cc, head * d : (head + 1) * d]
                        )
    torch.testing.assert_close(y[0, r, c], want)


def test_pool_is_ceil_mode_average():
    m = OutlookAttention(4, num_heads=1, stride=3).double()
    x = rand(2, 7, 5, 4)
    want = F.avg_pool2d(x.permute(0, 3, 1, 2), 3, 3, ceil_mode=True).permute(0, 2, 3, 1)
    torch.testing.assert_close(m.pooled(x), want)


def test_weights_are_distributions():
    m = OutlookAttention(8, num_heads=2).double()
    forward_backward(m, rand(2, 6, 7, 8))
    torch.testing.assert_close(m.last_weights.sum(-1), torch.ones_like(m.last_weights.sum(-1)))
