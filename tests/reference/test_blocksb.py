"""Reference tests for group blocksb: shuffle_attention, polarized_sa (focal_modulation is
checked against timm's own FocalModulation in tests/specs/test_focal_modulation.py).

Each reference gets: forward/backward at several shapes in train and eval mode, a tiny
float64 gradcheck, and properties written from the paper (closed forms, symmetries).
"""

from __future__ import annotations

import pytest
import torch

from tests.reference import polarized_sa, shuffle_attention
from tests.reference.harness import gradcheck, train_and_eval


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _randomise(module: torch.nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


# --------------------------------------------------------------------------- shuffle_attention


@pytest.mark.parametrize("shape,groups", [((2, 16, 5, 7), 4), ((1, 16, 3, 3), 8), ((3, 12, 1, 6), 1)])
def test_shuffle_attention_shapes(shape, groups):
    m = shuffle_attention.ShuffleAttention(shape[1], groups)
    _randomise(m)
    assert train_and_eval(m, _randn(*shape)).shape == shape


def test_shuffle_attention_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="divisible"):
        shuffle_attention.ShuffleAttention(20, groups=4)


def test_shuffle_attention_closed_form():
    # with every scale zero the gates are the constants sigmoid(b): output channel 2i is
    # input channel i, 2i + 1 is input channel C/2 + i, each times its half's gate
    m = shuffle_attention.ShuffleAttention(16, groups=2)
    with torch.no_grad():
        m.cbias.copy_(torch.tensor([0.3, -1.0, 2.0, 0.0]))
        m.sbias.copy_(torch.tensor([1.5, 0.5, -0.2, 0.7]))
    x = _randn(2, 16, 3, 5)
    y = m(x)
    c = 4
    for i in range(16):
        pos = i % (2 * c)  # position of input channel i in its group
        gate = m.cbias[pos] if pos < c else m.sbias[pos - c]
        out = 2 * i if i < 8 else 2 * (i - 8) + 1
        torch.testing.assert_close(y[:, out], x[:, i] * torch.sigmoid(gate))


def test_shuffle_attention_groups_share_parameters():
    # every group uses the same gates: permuting whole groups of the input permutes the
    # un-shuffled output the same way
    m = shuffle_attention.ShuffleAttention(24, groups=3)
    _randomise(m)
    x = _randn(2, 24, 4, 5)
    perm = torch.tensor([2, 0, 1])
    xp = x.reshape(2, 3, 8, 4, 5)[:, perm].reshape(2, 24, 4, 5)

    def unshuffle(y):  # invert the two-group shuffle: back to [B, G, 2c, H, W]
        return y.reshape(2, 12, 2, 4, 5).transpose(1, 2).reshape(2, 3, 8, 4, 5)

    torch.testing.assert_close(unshuffle(m(xp)), unshuffle(m(x))[:, perm])


def test_shuffle_attention_spatial_gate_ignores_channel_affine():
    # GN per channel: the spatial gate of a channel does not change when that channel is
    # shifted and positively scaled (up to GN's eps)
    m = shuffle_attention.ShuffleAttention(8, groups=2).double()
    _randomise(m)
    m.gn.eps = 0.0
    x = _randn(2, 8, 4, 4, dtype=torch.float64)
    _, _, _, s1 = m.gates(x)
    _, _, _, s2 = m.gates(3.0 * x + 1.5)
    torch.testing.assert_close(s1, s2)


def test_shuffle_attention_gradcheck():
    m = shuffle_attention.ShuffleAttention(8, groups=2)
    _randomise(m)
    gradcheck(m, _randn(2, 8, 3, 4, dtype=torch.float64))


# --------------------------------------------------------------------------- polarized_sa

PSA_VARIANTS = [
    dict(),  # paper, parallel
    dict(layout="sequential"),  # paper, sequential
    dict(layout="parallel", ch_transform="none", sp_softmax="logits"),  # official PSA_p
    dict(layout="sequential", ch_transform="bottleneck", sp_softmax="value"),  # official PSA_s
]


@pytest.mark.parametrize("kwargs", PSA_VARIANTS)
@pytest.mark.parametrize("shape", [(2, 16, 5, 7), (1, 16, 1, 1), (3, 16, 2, 9)])
def test_polarized_sa_shapes(kwargs, shape):
    m = polarized_sa.PolarizedSelfAttention(16, **kwargs)
    assert train_and_eval(m, _randn(*shape)).shape == shape


@pytest.mark.parametrize("kwargs", PSA_VARIANTS)
def test_polarized_sa_positions_permute(kwargs):
    # only 1x1 convs, global pools and softmaxes over all positions: A_ch ignores the order of
    # the positions and A_sp follows it, so the block commutes with any permutation of them
    m = polarized_sa.PolarizedSelfAttention(16, **kwargs).double()
    _randomise(m)
    x = _randn(2, 16, 4, 5, dtype=torch.float64)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(3))

    def shuffle(t):
        return t.flatten(2)[:, :, perm].reshape(t.shape)

    torch.testing.assert_close(m.channel_attention(shuffle(x)), m.channel_attention(x))
    torch.testing.assert_close(m(shuffle(x)), shuffle(m(x)))


def test_polarized_sa_paper_closed_form():
    # equations (3)-(6) of the paper written with einsum, for the parallel layout
    m = polarized_sa.PolarizedSelfAttention(8).double()
    _randomise(m)
    x = _randn(2, 8, 3, 4, dtype=torch.float64)
    wq, wv, wz = m.ch_q.weight[:, :, 0, 0], m.ch_v.weight[:, :, 0, 0], m.ch_z.weight[:, :, 0, 0]
    q = torch.softmax(torch.einsum("oc,bchw->bhw", wq, x).flatten(1), dim=1)  # [B, HW]
    z = torch.einsum("dc,bcn,bn->bd", wv, x.flatten(2), q) @ wz.T  # [B, C]
    z = (z - z.mean(1, keepdim=True)) / torch.sqrt(z.var(1, unbiased=False, keepdim=True) + 1e-5)
    a_ch = torch.sigmoid(z * m.ch_ln.weight.flatten() + m.ch_ln.bias.flatten())
    g = torch.softmax(torch.einsum("dc,bc->bd", m.sp_q.weight[:, :, 0, 0], x.mean((2, 3))), dim=1)
    a_sp = torch.sigmoid(torch.einsum("bd,dc,bchw->bhw", g, m.sp_v.weight[:, :, 0, 0], x))
    torch.testing.assert_close(m(x), x * a_ch[:, :, None, None] + x * a_sp[:, None])


def test_polarized_sa_single_position():
    # one position: the channel softmax is 1, and PSA_p's softmax over positions makes A_sp = sigmoid(1)
    m = polarized_sa.PolarizedSelfAttention(8, ch_transform="none", sp_softmax="logits")
    _randomise(m)
    x = _randn(3, 8, 1, 1)
    torch.testing.assert_close(
        m.spatial_attention(x), torch.full((3, 1, 1, 1), torch.sigmoid(torch.tensor(1.0)).item())
    )
    torch.testing.assert_close(m.channel_attention(x), torch.sigmoid(m.ch_z(m.ch_v(x))))


@pytest.mark.parametrize("kwargs", PSA_VARIANTS)
def test_polarized_sa_gradcheck(kwargs):
    m = polarized_sa.PolarizedSelfAttention(8, ratio=2, **kwargs)
    _randomise(m)
    gradcheck(m, _randn(2, 8, 3, 2, dtype=torch.float64))
