"""Tests for the spatial-attention references, group A.

non_local, stn, attention_gate, gcnet, a2net, ccnet, emanet, dcn, show_attend_tell, ram,
glimpse. Each mechanism gets: forward/backward at several shapes (output shape checked),
train and eval mode, a small float64 gradcheck, and the identities its paper gives.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from tests.reference import (
    a2net,
    attention_gate,
    ccnet,
    dcn,
    emanet,
    gcnet,
    glimpse,
    non_local,
    ram,
    show_attend_tell,
    stn,
)
from tests.reference.harness import forward_backward, gradcheck, param_count, train_and_eval


@pytest.fixture(autouse=True)
def _deterministic():
    """Default initialisers draw from the global RNG: seed it so every test is order-independent."""
    torch.manual_seed(0)


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def randomise(module, seed=0, scale=0.5, skip=()):
    """Overwrite every parameter with N(0, scale^2) so no identity-at-init hides a bug."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if any(name.startswith(s) for s in skip):
                continue
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return module


def close(a, b, atol=1e-5, rtol=1e-4):
    torch.testing.assert_close(a, b, atol=atol, rtol=rtol)


# ---------------------------------------------------------------------------- non_local

NL = non_local.NonLocal


@pytest.mark.parametrize("shape", [(2, 6, 7), (1, 6, 5, 7), (2, 6, 3, 4, 5), (1, 6, 2, 3, 6)])
@pytest.mark.parametrize("sub_sample,bn_layer", [(True, True), (False, True), (True, False), (False, False)])
def test_non_local_forward_backward_ranks(shape, sub_sample, bn_layer):
    m = randomise(NL(6, sub_sample=sub_sample, bn_layer=bn_layer), seed=1)
    out = forward_backward(m, rand(*shape))
    assert out.shape == shape


@pytest.mark.parametrize("shape", [(2, 8, 4, 6), (3, 8, 9)])
def test_non_local_train_eval(shape):
    out = train_and_eval(randomise(NL(8), seed=2), rand(*shape, seed=3))
    assert out.shape == shape


def test_non_local_gradcheck():
    gradcheck(randomise(NL(4), seed=4), rand(2, 4, 3, 5, seed=5))
    gradcheck(randomise(NL(4, sub_sample=False, bn_layer=False), seed=6), rand(1, 4, 3, 5, seed=7))
    gradcheck(randomise(NL(4), seed=8), rand(2, 4, 2, 3, 4, seed=9), eval_mode=False)


@pytest.mark.parametrize("bn_layer", [True, False])
def test_non_local_identity_at_init(bn_layer):
    # Paper 4.1: the BN scale after W starts at zero, so the block starts as the identity.
    m = NL(6, bn_layer=bn_layer)
    x = rand(2, 6, 4, 5)
    assert torch.equal(m.train()(x), x)
    assert torch.equal(m.eval()(x), x)


def test_non_local_defaults():
    m = NL(256)
    assert m.inter_channels == 128
    assert m.sub_sample and m.bn_layer and m.use_scale
    assert torch.all(m.bn.weight == 0)
    assert [n for n, _ in m.named_parameters()] == [
        "theta.weight",
        "theta.bias",
        "phi.weight",
        "phi.bias",
        "g.weight",
        "g.bias",
        "W.weight",
        "W.bias",
        "bn.weight",
        "bn.bias",
    ]


def _non_local_by_hand(m, x, use_scale=True):
    """Equations of section 3 written out on a 2-D input, eval-mode BN."""
    b, c, h, w = x.shape
    xp = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(b, c, h // 2, 2, w // 2, 2).amax(dim=(3, 5))
    xf, xpf = x.reshape(b, c, -1), xp.reshape(b, c, -1)
    theta = torch.einsum("oc,bcn->bno", m.theta.weight, xf) + m.theta.bias
    phi = torch.einsum("oc,bcp->bpo", m.phi.weight, xpf) + m.phi.bias
    g = torch.einsum("oc,bcp->bpo", m.g.weight, xpf) + m.g.bias
    f = torch.einsum("bno,bpo->bnp", theta, phi)
    if use_scale:
        f = f / math.sqrt(m.inter_channels)
    f = torch.exp(f - f.amax(-1, keepdim=True))
    a = f / f.sum(-1, keepdim=True)
    y = torch.einsum("bnp,bpo->bno", a, g)
    wy = torch.einsum("co,bno->bcn", m.W.weight, y) + m.W.bias[:, None]
    bn = m.bn
    wy = (wy - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + bn.eps) * bn.weight[:, None] + bn.bias[
        :, None
    ]
    return x + wy.reshape(x.shape)


@pytest.mark.parametrize("use_scale", [True, False])
def test_non_local_matches_equations(use_scale):
    m = randomise(NL(6, use_scale=use_scale), seed=10).eval()
    with torch.no_grad():
        m.bn.running_mean.copy_(rand(6, seed=11))
        m.bn.running_var.copy_(rand(6, seed=12).abs() + 0.5)
    x = rand(2, 6, 5, 7, seed=13)
    close(m(x), _non_local_by_hand(m, x, use_scale=use_scale))


def test_non_local_scale_changes_output():
    a = randomise(NL(6, use_scale=True), seed=14).eval()
    b = randomise(NL(6, use_scale=False), seed=14).eval()
    x = rand(1, 6, 4, 4, seed=15)
    assert not torch.allclose(a(x), b(x), atol=1e-4)


def test_non_local_attention_rows_sum_to_one_and_pool_shape():
    m = randomise(NL(6), seed=16)
    a = m.attention(rand(2, 6, 3, 6, 5, seed=17))
    # 3-D: the temporal axis is not pooled, H and W are halved (floor).
    assert a.shape == (2, 3 * 6 * 5, 3 * 3 * 2)
    close(a.sum(-1), torch.ones(2, 90))
    assert (a > 0).all()


def test_non_local_permutation_equivariant_without_subsampling():
    # Without pooling, a non-local op treats positions as a set: permuting them permutes y.
    m = randomise(NL(6, sub_sample=False), seed=18).eval()
    x = rand(2, 6, 11, seed=19)
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    close(m(x[:, :, perm]), m(x)[:, :, perm])


def test_non_local_3d_with_one_frame_equals_2d():
    m = randomise(NL(6), seed=20).eval()
    x = rand(2, 6, 4, 6, seed=21)
    close(m(x.unsqueeze(2)).squeeze(2), m(x))


# ---------------------------------------------------------------------------- stn

STN = stn.SpatialTransformer


def _set_theta(m, theta):
    with torch.no_grad():
        m.fc2.weight.zero_()
        m.fc2.bias.copy_(torch.tensor(theta, dtype=m.fc2.bias.dtype).flatten())


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (2, 4, 6, 6), (3, 1, 9, 4), (1, 2, 1, 5)])
def test_stn_forward_backward(shape):
    m = STN(shape[1])
    with torch.no_grad():
        m.fc2.weight.normal_(0, 0.1)
    out = forward_backward(m, rand(*shape))
    assert out.shape == shape


def test_stn_train_eval():
    out = train_and_eval(STN(3), rand(2, 3, 7, 5))
    assert out.shape == (2, 3, 7, 5)


def test_stn_gradcheck():
    m = STN(4)
    with torch.no_grad():
        m.fc2.weight.normal_(0, 0.05)
        m.fc2.bias.copy_(torch.tensor([0.9, 0.1, 0.05, -0.1, 1.1, 0.03]))
    gradcheck(m, rand(2, 4, 3, 5))


@pytest.mark.parametrize("align_corners", [False, True])
def test_stn_identity_at_init(align_corners):
    m = STN(3, align_corners=align_corners)
    x = rand(2, 3, 5, 7)
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    close(m.theta(x), eye.expand(2, 2, 3), atol=0, rtol=0)
    close(m(x), x, atol=1e-5, rtol=0)


def test_stn_integer_translation_align_corners_false():
    # x_s = x_t + tx; with align_corners=False one pixel is 2/W normalised units.
    m = STN(2)
    x = rand(1, 2, 4, 6)
    _set_theta(m, [[1, 0, 2 * 2 / 6], [0, 1, 0]])
    out = m(x)
    close(out[..., :4], x[..., 2:], atol=1e-5, rtol=0)
    assert torch.all(out[..., 4:].abs() < 1e-5)
    _set_theta(m, [[1, 0, 0], [0, 1, -2 / 4]])  # one row down: y_s = y_t - 1
    out = m(x)
    close(out[:, :, 1:], x[:, :, :-1], atol=1e-5, rtol=0)
    assert torch.all(out[:, :, 0].abs() < 1e-5)


def test_stn_integer_translation_align_corners_true():
    # With align_corners=True one pixel is 2/(W-1) normalised units.
    m = STN(2, align_corners=True)
    x = rand(1, 2, 4, 6)
    _set_theta(m, [[1, 0, 2 * 2 / 5], [0, 1, 0]])
    close(m(x)[..., :4], x[..., 2:], atol=1e-5, rtol=0)


def test_stn_half_pixel_shift_is_bilinear_average():
    # The bilinear kernel max(0, 1-|d|): sampling half-way between pixels averages them,
    # and a neighbour outside the map contributes zero.
    m = STN(1)
    x = rand(2, 1, 3, 5)
    _set_theta(m, [[1, 0, 1 / 5], [0, 1, 0]])
    out = m(x)
    close(out[..., :4], 0.5 * (x[..., :4] + x[..., 1:]), atol=1e-5, rtol=0)
    close(out[..., 4], 0.5 * x[..., 4], atol=1e-5, rtol=0)


def test_stn_flip():
    m = STN(3)
    x = rand(1, 3, 4, 5)
    _set_theta(m, [[-1, 0, 0], [0, 1, 0]])
    close(m(x), x.flip(-1), atol=1e-5, rtol=0)


def test_stn_parameter_order():
    assert [n for n, _ in STN(3).named_parameters()] == [
        "loc_conv1.weight",
        "loc_conv1.bias",
        "loc_conv2.weight",
        "loc_conv2.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ]


# ---------------------------------------------------------------------------- attention_gate

AG = attention_gate.AttentionGate


@pytest.mark.parametrize(
    "xs,gs,dims",
    [
        ((2, 6, 8, 10), (2, 12, 4, 5), 2),
        ((1, 4, 7, 9), (1, 8, 3, 4), 2),  # odd sizes: theta gives 3x4, alpha resized to 7x9
        ((1, 4, 6, 6), (1, 8, 2, 2), 2),  # coarser gating than theta's output
        ((1, 4, 4, 6, 6), (1, 8, 2, 3, 3), 3),
    ],
)
def test_attention_gate_forward_backward(xs, gs, dims):
    m = AG(xs[1], gating_channels=gs[1], dims=dims)
    out = forward_backward(m, rand(*xs), rand(*gs, seed=1))
    assert out.shape == xs


def test_attention_gate_train_eval_and_attention_output():
    m = AG(4, gating_channels=6, return_attention=True)
    out, alpha = train_and_eval(m, rand(2, 4, 6, 8), rand(2, 6, 3, 4, seed=1))
    assert out.shape == (2, 4, 6, 8) and alpha.shape == (2, 1, 6, 8)
    assert ((alpha > 0) & (alpha < 1)).all()


def test_attention_gate_gradcheck():
    gradcheck(AG(4, gating_channels=6), rand(2, 4, 3, 5), rand(2, 6, 2, 2, seed=1))
    gradcheck(
        AG(4, gating_channels=6, output_transform=False, align_corners=True), rand(1, 4, 4, 5), rand(1, 6, 2, 2, seed=2)
    )


def test_attention_gate_matches_paper_equations():
    # Paper eq. 1-2 (no resampling: sub_sample_factor=1, g at x's resolution):
    # alpha = sigmoid(psi^T relu(W_x^T x + W_g^T g + b_g) + b_psi), x_hat = alpha * x.
    m = randomise(AG(5, gating_channels=3, inter_channels=4, sub_sample_factor=1, output_transform=False), seed=3)
    x, g = rand(2, 5, 4, 6, seed=4), rand(2, 3, 4, 6, seed=5)
    q = torch.einsum("ic,bchw->bihw", m.theta.weight[:, :, 0, 0], x)
    q = q + torch.einsum("ic,bchw->bihw", m.phi.weight[:, :, 0, 0], g) + m.phi.bias.view(1, -1, 1, 1)
    a = torch.sigmoid(torch.einsum("i,bihw->bhw", m.psi.weight[0, :, 0, 0], torch.relu(q)) + m.psi.bias)
    close(m(x, g), a[:, None] * x)


def test_attention_gate_output_transform_by_hand():
    m = randomise(AG(4, gating_channels=4), seed=6).eval()
    with torch.no_grad():
        m.bn.running_mean.copy_(rand(4, seed=7))
        m.bn.running_var.copy_(rand(4, seed=8).abs() + 0.5)
    x, g = rand(2, 4, 6, 8, seed=9), rand(2, 4, 3, 4, seed=10)
    y = m.attention(x, g) * x
    wy = torch.einsum("oc,bchw->bohw", m.W.weight[:, :, 0, 0], y) + m.W.bias.view(1, -1, 1, 1)
    bn = m.bn
    ref = (wy - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
        bn.running_var.view(1, -1, 1, 1) + bn.eps
    ) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    close(m(x, g), ref)


def test_attention_gate_strided_theta_and_resampling():
    # Official code: theta is a 2x2 stride-2 conv, alpha is computed at that resolution and
    # bilinearly resized back to x's size.
    m = randomise(AG(4, gating_channels=4, output_transform=False), seed=11)
    x, g = rand(1, 4, 6, 8, seed=12), rand(1, 4, 3, 4, seed=13)
    q = F.conv2d(x, m.theta.weight, stride=2)
    coarse = torch.sigmoid(m.psi(torch.relu(q + m.phi(g))))
    close(m.attention(x, g), F.interpolate(coarse, size=(6, 8), mode="bilinear", align_corners=False))
    m.align_corners = True
    close(m.attention(x, g), F.interpolate(coarse, size=(6, 8), mode="bilinear", align_corners=True))


def test_attention_gate_constant_gate():
    # psi weight zero: alpha = sigmoid(b_psi) everywhere, whatever x and g.
    m = AG(4, gating_channels=2, output_transform=False)
    with torch.no_grad():
        m.psi.weight.zero_()
        m.psi.bias.fill_(0.3)
    x = rand(2, 4, 6, 6)
    close(m(x, rand(2, 2, 3, 3, seed=1)), torch.sigmoid(torch.tensor(0.3)) * x)


def test_attention_gate_defaults():
    m = AG(256)
    assert m.theta.weight.shape == (128, 256, 2, 2) and m.theta.bias is None
    assert [n for n, _ in m.named_parameters()] == [
        "theta.weight",
        "phi.weight",
        "phi.bias",
        "psi.weight",
        "psi.bias",
        "W.weight",
        "W.bias",
        "bn.weight",
        "bn.bias",
    ]


# ---------------------------------------------------------------------------- gcnet

GC = gcnet.GlobalContext
FUSIONS = [("channel_add",), ("channel_mul",), ("channel_mul", "channel_add")]


@pytest.mark.parametrize("shape", [(2, 16, 5, 7), (1, 16, 1, 1), (1, 16, 3, 8)])
@pytest.mark.parametrize("pooling_type", ["att", "avg"])
@pytest.mark.parametrize("fusion_types", FUSIONS)
def test_gcnet_forward_backward(shape, pooling_type, fusion_types):
    m = randomise(GC(16, ratio=1 / 4, pooling_type=pooling_type, fusion_types=fusion_types), seed=1)
    out = forward_backward(m, rand(*shape))
    assert out.shape == shape


def test_gcnet_train_eval():
    out = train_and_eval(randomise(GC(16, ratio=1 / 4, fusion_types=FUSIONS[2])), rand(2, 16, 4, 6))
    assert out.shape == (2, 16, 4, 6)


def test_gcnet_gradcheck():
    gradcheck(randomise(GC(8, ratio=1 / 2, fusion_types=FUSIONS[2]), seed=2), rand(2, 8, 3, 5))
    gradcheck(randomise(GC(8, ratio=1 / 2, pooling_type="avg"), seed=3), rand(1, 8, 3, 5))


def test_gcnet_identity_at_init():
    x = rand(2, 32, 4, 5)
    assert torch.equal(GC(32)(x), x)  # add fusion: x + 0
    close(GC(32, fusion_types=("channel_mul",))(x), 0.5 * x)  # mul fusion: x * sigmoid(0)


def _gc_transform(t, c):
    y = torch.einsum("pc,bc->bp", t[0].weight[:, :, 0, 0], c) + t[0].bias
    mu, var = y.mean(-1, keepdim=True), y.var(-1, unbiased=False, keepdim=True)
    y = (y - mu) / torch.sqrt(var + t[1].eps) * t[1].weight.view(1, -1) + t[1].bias.view(1, -1)
    y = torch.relu(y)
    return torch.einsum("cp,bp->bc", t[3].weight[:, :, 0, 0], y) + t[3].bias


def test_gcnet_matches_equations():
    m = randomise(GC(8, ratio=1 / 2, fusion_types=FUSIONS[2]), seed=4)
    x = rand(2, 8, 3, 5, seed=5)
    logits = torch.einsum("c,bchw->bhw", m.conv_mask.weight[0, :, 0, 0], x).flatten(1) + m.conv_mask.bias
    w = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    ctx = torch.einsum("bcn,bn->bc", x.flatten(2), w)
    ref = (
        x * torch.sigmoid(_gc_transform(m.channel_mul_conv, ctx))[:, :, None, None]
        + _gc_transform(m.channel_add_conv, ctx)[:, :, None, None]
    )
    close(m(x), ref)


def test_gcnet_pooling():
    m = randomise(GC(8, ratio=1 / 2), seed=6)
    x = rand(2, 8, 4, 3, seed=7)
    close(m.attention(x).sum(-1), torch.ones(2))
    # A map that is constant over space pools to its value, whatever the weights.
    const = rand(2, 8, 1, 1, seed=8).expand(2, 8, 4, 3)
    close(m.context(const), const[:, :, :1, :1])
    avg = GC(8, ratio=1 / 2, pooling_type="avg")
    close(avg.context(x), x.mean(dim=(2, 3), keepdim=True))


def test_gcnet_defaults():
    m = GC(256)
    assert m.planes == 16
    assert [n for n, _ in m.named_parameters()] == [
        "conv_mask.weight",
        "conv_mask.bias",
        "channel_add_conv.0.weight",
        "channel_add_conv.0.bias",
        "channel_add_conv.1.weight",
        "channel_add_conv.1.bias",
        "channel_add_conv.3.weight",
        "channel_add_conv.3.bias",
    ]


# ---------------------------------------------------------------------------- a2net

A2 = a2net.DoubleAttention


@pytest.mark.parametrize("shape", [(2, 8, 9), (1, 8, 5, 7), (2, 8, 3, 4, 5), (1, 8, 1, 1)])
@pytest.mark.parametrize("residual", [True, False])
def test_a2net_forward_backward(shape, residual):
    out = forward_backward(A2(8, residual=residual), rand(*shape))
    assert out.shape == shape


def test_a2net_train_eval():
    out = train_and_eval(A2(8, c_m=3, c_n=5), rand(2, 8, 4, 6))
    assert out.shape == (2, 8, 4, 6)


def test_a2net_gradcheck():
    gradcheck(A2(6, c_m=3, c_n=2), rand(2, 6, 3, 5))
    gradcheck(A2(4, c_m=2, c_n=3, residual=False), rand(1, 4, 2, 3, 2))


def test_a2net_matches_equations():
    m = randomise(A2(6, c_m=4, c_n=3), seed=1)
    x = rand(2, 6, 3, 5, seed=2)
    xf = x.flatten(2)  # [B, C, N]
    A = torch.einsum("mc,bcn->bmn", m.phi.weight, xf) + m.phi.bias[:, None]
    Bl = torch.einsum("kc,bcn->bkn", m.theta.weight, xf) + m.theta.bias[:, None]
    Bm = torch.exp(Bl) / torch.exp(Bl).sum(-1, keepdim=True)  # softmax over positions
    G = torch.einsum("bmn,bkn->bmk", A, Bm)
    Vl = torch.einsum("kc,bcn->bkn", m.rho.weight, xf) + m.rho.bias[:, None]
    V = torch.exp(Vl) / torch.exp(Vl).sum(1, keepdim=True)  # softmax over the n maps
    Z = torch.einsum("bmk,bkn->bmn", G, V)
    out = torch.einsum("cm,bmn->bcn", m.proj.weight, Z) + m.proj.bias[:, None]
    close(m(x), x + out.reshape(x.shape))
    close(m.attention_vectors(x).sum(1), torch.ones(2, 15))


def test_a2net_uniform_gather_is_average_pooling():
    # theta constant => each attention map is uniform => every global descriptor is GAP(A).
    m = randomise(A2(6, c_m=4, c_n=3), seed=3)
    with torch.no_grad():
        m.theta.weight.zero_()
    x = rand(2, 6, 4, 5, seed=4)
    a = m.phi(x.flatten(2).transpose(1, 2))  # [B, N, m]
    close(m.gather(x), a.mean(1)[:, :, None].expand(2, 4, 3))


def test_a2net_permutation_equivariant():
    m = randomise(A2(6), seed=5)
    x = rand(2, 6, 10, seed=6)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    close(m(x[:, :, perm]), m(x)[:, :, perm])


# ---------------------------------------------------------------------------- ccnet

CC = ccnet.CrissCrossAttention


def _with_gamma(m, value=0.7):
    with torch.no_grad():
        m.gamma.fill_(value)
    return m


@pytest.mark.parametrize("shape", [(2, 16, 5, 7), (1, 8, 1, 4), (1, 8, 6, 1), (1, 8, 3, 3)])
def test_ccnet_forward_backward(shape):
    out = forward_backward(_with_gamma(CC(shape[1])), rand(*shape))
    assert out.shape == shape


def test_ccnet_train_eval():
    out = train_and_eval(_with_gamma(CC(16)), rand(2, 16, 4, 5))
    assert out.shape == (2, 16, 4, 5)


def test_ccnet_gradcheck():
    gradcheck(_with_gamma(randomise(CC(8, reduction=4), seed=1)), rand(1, 8, 3, 5))


def test_ccnet_identity_at_init():
    x = rand(2, 16, 4, 5)
    assert torch.equal(CC(16)(x), x)


def _dense_criss_cross(m, x):
    """One CCA step as dense attention restricted to the criss-cross path (u counted once)."""
    b, c, h, w = x.shape
    q = torch.einsum("oc,bcn->bon", m.query.weight[:, :, 0, 0], x.flatten(2)) + m.query.bias[:, None]
    k = torch.einsum("oc,bcn->bon", m.key.weight[:, :, 0, 0], x.flatten(2)) + m.key.bias[:, None]
    v = torch.einsum("oc,bcn->bon", m.value.weight[:, :, 0, 0], x.flatten(2)) + m.value.bias[:, None]
    rows = torch.arange(h).repeat_interleave(w)
    cols = torch.arange(w).repeat(h)
    allowed = (rows[:, None] == rows[None, :]) | (cols[:, None] == cols[None, :])
    e = torch.einsum("bcu,bcv->buv", q, k).masked_fill(~allowed, float("-inf"))
    a = e.softmax(-1)
    return (m.gamma * torch.einsum("buv,bcv->bcu", a, v) + x.flatten(2)).view_as(x)


def test_ccnet_matches_dense_masked_attention():
    m = _with_gamma(randomise(CC(8, reduction=2, recurrence=1), seed=2), 0.8)
    x = rand(2, 8, 4, 5, seed=3)
    close(m(x), _dense_criss_cross(m, x))
    m.recurrence = 2
    close(m(x), _dense_criss_cross(m, _dense_criss_cross(m, x)))


def test_ccnet_attention_weights():
    m = randomise(CC(8, reduction=2), seed=4)
    a_col, a_row = m.attention(rand(2, 8, 4, 6, seed=5))
    close(a_col.sum(-1) + a_row.sum(-1), torch.ones(2, 4, 6))
    diag = a_col[:, torch.arange(4), :, torch.arange(4)]  # the self position in the column part
    assert torch.all(diag == 0)


def test_ccnet_recurrence_reaches_every_position():
    # Paper section 3.2: one criss-cross step links a pixel only to its row and column;
    # two steps (R = 2) link every pair of pixels.
    x = rand(1, 8, 4, 5, seed=6)
    x2 = x.clone()
    x2[:, :, 0, 0] += 1.0
    for recurrence, reaches in [(1, False), (2, True)]:
        m = _with_gamma(randomise(CC(8, reduction=2, recurrence=recurrence), seed=7), 0.9)
        changed = (m(x) - m(x2))[:, :, 3, 4].abs().max() > 1e-6
        assert bool(changed) == reaches


def test_ccnet_variants_and_defaults():
    assert CC(256).recurrence == 2 and CC(256).query.out_channels == 32
    m1 = _with_gamma(randomise(CC(8, reduction=2), seed=8), 1.0)
    m2 = CC(8, reduction=2, learn_gamma=False)
    m2.load_state_dict({k: v for k, v in m1.state_dict().items() if k != "gamma"}, strict=False)
    x = rand(1, 8, 3, 4, seed=9)
    close(m1(x), m2(x))
    assert "gamma" not in dict(m2.named_parameters())


# ---------------------------------------------------------------------------- emanet

EMA = emanet.EMAttention


@pytest.mark.parametrize("shape", [(2, 16, 5, 7), (1, 16, 3, 3), (2, 16, 1, 6)])
@pytest.mark.parametrize("stop_em_grad", [True, False])
def test_emanet_forward_backward(shape, stop_em_grad):
    m = EMA(16, k=8, stop_em_grad=stop_em_grad)
    x = rand(*shape)
    out = forward_backward(m, x, check_params=not stop_em_grad)
    assert out.shape == shape
    # Official code runs EM under no_grad: conv1 gets no gradient at all.
    assert (m.conv1.weight.grad is None) == stop_em_grad
    assert m.conv2.weight.grad is not None


def test_emanet_train_eval_and_bases_update():
    m = EMA(16, k=8)
    mu0 = m.mu.clone()
    x = rand(2, 16, 4, 5)
    train_and_eval(m, x, check_params=False)
    assert not torch.allclose(m.mu, mu0)  # train mode moved the bases
    mu1 = m.mu.clone()
    with torch.no_grad():
        m.eval()(x)
    assert torch.equal(m.mu, mu1)  # eval mode does not


def test_emanet_moving_average_rule():
    m = EMA(8, k=4, stage_num=2).train()
    mu0 = m.mu.clone()
    x = rand(3, 8, 3, 4)
    with torch.no_grad():
        _, mu_t = m.em(m.conv1(x).flatten(2))
        m(x)
    close(m.mu, 0.9 * mu0 + 0.1 * mu_t.mean(0, keepdim=True))


def test_emanet_gradcheck():
    gradcheck(EMA(4, k=3, stage_num=2, stop_em_grad=False), rand(2, 4, 3, 5))


def test_emanet_matches_em_equations():
    m = EMA(6, k=3, stage_num=3).double().eval()
    with torch.no_grad():
        m.bn.running_mean.copy_(rand(6, seed=1, dtype=torch.float64))
        m.bn.weight.copy_(rand(6, seed=2, dtype=torch.float64))
    x = rand(2, 6, 4, 5, seed=3, dtype=torch.float64)
    X = torch.einsum("oc,bcn->bon", m.conv1.weight[:, :, 0, 0], x.flatten(2)) + m.conv1.bias[:, None]
    mu = m.mu.expand(2, -1, -1)
    for _ in range(3):
        logits = torch.einsum("bcn,bck->bnk", X, mu)
        Z = torch.exp(logits - logits.amax(-1, keepdim=True))
        Z = Z / Z.sum(-1, keepdim=True)  # E-step
        mu = torch.einsum("bcn,bnk->bck", X, Z / (1e-6 + Z.sum(1, keepdim=True)))
        mu = mu / (1e-6 + mu.pow(2).sum(1, keepdim=True).sqrt())  # M-step + L2 norm
    rec = torch.relu(torch.einsum("bck,bnk->bcn", mu, Z)).view_as(x)
    y = torch.einsum("oc,bchw->bohw", m.conv2.weight[:, :, 0, 0], rec)
    bn = m.bn
    y = (y - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
        bn.running_var.view(1, -1, 1, 1) + bn.eps
    ) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    close(m(x), torch.relu(y + x), atol=1e-10, rtol=1e-8)
    z, mu_t = m.em(X)
    close(z.sum(-1), torch.ones(2, 20, dtype=torch.float64))
    close(mu_t.norm(dim=1), torch.ones(2, 3, dtype=torch.float64), atol=1e-5, rtol=0)


def test_emanet_iteration_count_changes_output():
    x = rand(2, 8, 4, 5)
    a = EMA(8, k=4, stage_num=1).eval()
    b = EMA(8, k=4, stage_num=3).eval()
    b.load_state_dict(a.state_dict())
    assert not torch.allclose(a(x), b(x), atol=1e-4)
    assert (b(x) >= 0).all()


def test_emanet_defaults():
    m = EMA(256)
    assert m.mu.shape == (1, 256, 64) and m.stage_num == 3 and m.momentum == 0.9 and m.stop_em_grad
    close(m.mu.norm(dim=1), torch.ones(1, 64), atol=1e-5, rtol=0)
    assert [n for n, _ in m.named_parameters()] == [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "bn.weight",
        "bn.bias",
    ]


# ---------------------------------------------------------------------------- dcn

DCN = dcn.DeformableConv2d


def _random_offsets(m, seed=0, scale=0.3):
    with torch.no_grad():
        m.conv_offset.weight.copy_(rand(*m.conv_offset.weight.shape, seed=seed) * scale)
        m.conv_offset.bias.copy_(rand(*m.conv_offset.bias.shape, seed=seed + 1) * scale)
    return m


@pytest.mark.parametrize(
    "shape,kw,out_hw",
    [
        ((2, 4, 5, 7), {}, (5, 7)),
        ((1, 4, 7, 9), {"stride": 2}, (4, 5)),
        ((1, 4, 6, 6), {"dilation": 2, "padding": 2, "deform_groups": 2}, (6, 6)),
        ((2, 4, 5, 5), {"groups": 2, "out_channels": 6, "bias": True}, (5, 5)),
        ((1, 4, 5, 6), {"modulated": True, "deform_groups": 4}, (5, 6)),
    ],
)
def test_dcn_forward_backward(shape, kw, out_hw):
    m = _random_offsets(DCN(shape[1], **kw))
    out = forward_backward(m, rand(*shape, seed=3))
    assert out.shape == (shape[0], kw.get("out_channels", shape[1])) + out_hw


def test_dcn_train_eval():
    out = train_and_eval(_random_offsets(DCN(4, modulated=True, bias=True)), rand(2, 4, 5, 6))
    assert out.shape == (2, 4, 5, 6)


def test_dcn_gradcheck():
    gradcheck(
        _random_offsets(DCN(4, out_channels=3, deform_groups=2, modulated=True, bias=True), seed=1),
        rand(1, 4, 3, 5, seed=2),
    )
    gradcheck(_random_offsets(DCN(2, stride=2), seed=3), rand(2, 2, 4, 5, seed=4))


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"stride": 2},
        {"dilation": 2, "padding": 2},
        {"groups": 2, "bias": True},
        {"kernel_size": 1, "padding": 0},
        {"deform_groups": 2, "out_channels": 3},
    ],
)
def test_dcn_zero_offsets_is_plain_conv(kw):
    m = DCN(4, **kw)
    x = rand(2, 4, 6, 7)
    ref = F.conv2d(
        x, m.conv.weight, m.conv.bias, stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups
    )
    close(m(x), ref)


def test_dcn_v2_init_is_half_conv():
    m = DCN(4, modulated=True, bias=True)
    with torch.no_grad():
        m.conv.bias.copy_(rand(4, seed=1))
    x = rand(1, 4, 5, 5)
    close(m(x), 0.5 * F.conv2d(x, m.conv.weight, padding=1) + m.conv.bias.view(1, -1, 1, 1))


def _const_offset(m, dy, dx):
    taps = m.kernel_size**2 * m.deform_groups
    with torch.no_grad():
        m.conv_offset.weight.zero_()
        m.conv_offset.bias.view(taps, 2).copy_(torch.tensor([dy, dx]).expand(taps, 2))


def test_dcn_integer_offset_shifts_the_sampling_grid():
    # dy = +1 for every tap: each output reads the window one row lower; outside is zero.
    m = DCN(3)
    _const_offset(m, 1.0, 0.0)
    x = rand(2, 3, 5, 6)
    xp = F.pad(x, (1, 1, 1, 2))[:, :, 1:]
    close(m(x), F.conv2d(xp, m.conv.weight))


def test_dcn_half_pixel_offset_is_bilinear_average():
    # dx = 0.5: bilinear interpolation halfway, so the output is the mean of the plain conv
    # and the conv whose window is one column to the right.
    m = DCN(3)
    _const_offset(m, 0.0, 0.5)
    x = rand(1, 3, 4, 5)
    plain = F.conv2d(x, m.conv.weight, padding=1)
    shifted = F.conv2d(F.pad(x, (1, 2, 1, 1))[:, :, :, 1:], m.conv.weight)
    close(m(x), 0.5 * (plain + shifted))


def test_dcn_offset_layout_and_params():
    # Channel 2k is dy, 2k+1 is dx of tap k: moving only the centre tap (k = 4) by dx = +1
    # changes the output exactly like the centre weight reading x one column right.
    m = DCN(2)
    with torch.no_grad():
        m.conv_offset.weight.zero_()
        m.conv_offset.bias.zero_()
        m.conv_offset.bias[2 * 4 + 1] = 1.0
    x = rand(1, 2, 4, 5)
    xs = F.pad(x, (0, 1))[:, :, :, 1:]
    centre = F.conv2d(xs, m.conv.weight[:, :, 1:2, 1:2]) - F.conv2d(x, m.conv.weight[:, :, 1:2, 1:2])
    close(m(x), F.conv2d(x, m.conv.weight, padding=1) + centre)
    assert [n for n, _ in DCN(8).named_parameters()] == ["conv_offset.weight", "conv_offset.bias", "conv.weight"]


# ---------------------------------------------------------------------------- show_attend_tell

SAT = show_attend_tell.SoftHardAttention


@pytest.mark.parametrize("b,l,d,n", [(2, 6, 5, 7), (1, 9, 4, 3), (3, 1, 4, 2)])
@pytest.mark.parametrize("kw", [{}, {"selector": True, "n_layers_att": 2}])
def test_show_attend_tell_soft_forward_backward(b, l, d, n, kw):
    out = forward_backward(SAT(d, hidden_size=n, **kw), rand(b, l, d), rand(b, n, seed=1))
    assert out.shape == (b, d)


def test_show_attend_tell_train_eval():
    for kw in ({}, {"selector": True}, {"attention": "hard", "semi_sampling_p": 0.0}):
        out = train_and_eval(SAT(5, hidden_size=4, **kw), rand(2, 6, 5), rand(2, 4, seed=1))
        assert out.shape == (2, 5)


def test_show_attend_tell_hard_forward_backward():
    m = SAT(5, hidden_size=4, attention="hard", semi_sampling_p=1.0).train()
    a = rand(3, 6, 5)
    a_req = a.clone().requires_grad_()
    z = m(a_req, rand(3, 4, seed=1), generator=torch.Generator().manual_seed(0))
    z.sum().backward()
    # Only the attended location receives gradient: exactly one of the L rows per sample.
    assert ((a_req.grad.abs().sum(-1) > 0).sum(-1) == 1).all()
    assert m.U_att.weight.grad is None  # REINFORCE, not backprop


def test_show_attend_tell_gradcheck():
    gradcheck(SAT(4, hidden_size=3, selector=True, n_layers_att=2), rand(2, 5, 4), rand(2, 3, seed=1))


def test_show_attend_tell_soft_matches_equations():
    m = randomise(SAT(4, hidden_size=3, selector=True), seed=2)
    a, h = rand(2, 5, 4, seed=3), rand(2, 3, seed=4)
    pre = torch.tanh(a @ m.Wc_att.weight.T + m.Wc_att.bias + (h @ m.Wd_att.weight.T)[:, None])
    e = pre @ m.U_att.weight[0] + m.U_att.bias
    alpha = torch.exp(e) / torch.exp(e).sum(-1, keepdim=True)
    beta = torch.sigmoid(h @ m.W_sel.weight[0] + m.W_sel.bias)
    close(m(a, h), beta[:, None] * (alpha[:, :, None] * a).sum(1))
    close(m.weights(a, h).sum(-1), torch.ones(2))


def test_show_attend_tell_hard_sampling():
    m = SAT(4, hidden_size=3, attention="hard", semi_sampling_p=1.0).train()
    a, h = rand(16, 7, 4, seed=5), rand(16, 3, seed=6)

    def run(seed):
        return m(a, h, generator=torch.Generator().manual_seed(seed))

    z1, z2, z3 = run(0), run(0), run(1)
    assert torch.equal(z1, z2)  # same seed, same glimpses
    assert not torch.equal(z1, z3)  # another seed, other locations
    # Each context is one annotation vector a_s (a one-hot draw).
    match = (z1[:, None, :] == a).all(-1)
    assert (match.sum(-1) >= 1).all()


def test_show_attend_tell_hard_expectation_and_eval():
    soft = randomise(SAT(4, hidden_size=3), seed=7)
    hard = SAT(4, hidden_size=3, attention="hard", semi_sampling_p=0.0)
    hard.load_state_dict(soft.state_dict())
    a, h = rand(3, 6, 4, seed=8), rand(3, 3, seed=9)
    close(hard.train()(a, h), soft(a, h))  # with prob 1 - p the code uses alpha itself
    close(hard.eval()(a, h), soft(a, h))  # the official sampler's test-time path
    hard.hard_eval = "argmax"
    idx = soft.weights(a, h).argmax(-1)
    close(hard.eval()(a, h), a[torch.arange(3), idx])


def test_show_attend_tell_single_location():
    m = randomise(SAT(4, hidden_size=3), seed=10)
    a = rand(2, 1, 4)
    close(m(a, rand(2, 3, seed=1)), a[:, 0])


# ---------------------------------------------------------------------------- ram

RAM = ram.RecurrentAttentionStep


def _ram(**kw):
    cfg = dict(glimpse_size=4, num_scales=2, glimpse_hidden=8, loc_hidden=6, glimpse_features=10, hidden_size=12)
    cfg.update(kw)
    return RAM(3, **cfg)


def _ram_inputs(b=2, h=12, w=10, hidden=12, seed=0):
    l = (rand(b, 2, seed=seed + 1) * 0.4).clamp(-0.9, 0.9)
    return rand(b, 3, h, w, seed=seed), l, rand(b, hidden, seed=seed + 2)


@pytest.mark.parametrize("b,h,w", [(2, 12, 10), (1, 7, 9), (3, 5, 5)])
def test_ram_forward_backward(b, h, w):
    m = _ram().eval()
    rho, h_next, l_next = forward_backward(m, *_ram_inputs(b, h, w))
    assert rho.shape == (b, 6, 4, 4) and h_next.shape == (b, 12) and l_next.shape == (b, 2)


def test_ram_train_eval():
    outs = train_and_eval(_ram(), *_ram_inputs())
    assert [o.shape for o in outs] == [(2, 6, 4, 4), (2, 12), (2, 2)]


def test_ram_gradcheck():
    m = _ram(glimpse_size=2, glimpse_hidden=4, loc_hidden=3, glimpse_features=5, hidden_size=4)
    x, l, h = _ram_inputs(b=2, h=5, w=6, hidden=4, seed=3)
    gradcheck(m, x, l + 0.013, h)


def test_ram_glimpse_sensor_is_a_crop_and_pyramid():
    m = _ram()
    x = rand(2, 3, 8, 8)
    rho = m.glimpse(x, torch.zeros(2, 2))  # centre of an 8x8 image
    close(rho[:, :3], x[:, :, 2:6, 2:6])  # 4x4 crop at native resolution
    close(rho[:, 3:], F.avg_pool2d(x, 2))  # 8x8 patch averaged to 4x4
    # (x, y) order and a one-pixel step: l_x = +2/W moves the crop one column right.
    rho = m.glimpse(x, torch.tensor([[2 / 8, 0.0], [0.0, -2 / 8]]))
    close(rho[0, :3], x[0, :, 2:6, 3:7])
    close(rho[1, :3], x[1, :, 1:5, 2:6])
    # At the top-left corner (-1, -1) half the patch lies outside the image and reads zero.
    rho = m.glimpse(x, -torch.ones(2, 2))
    close(rho[:, :3, 2:, 2:], x[:, :, :2, :2])
    assert torch.all(rho[:, :3, :2] == 0) and torch.all(rho[:, :3, :, :2] == 0)


def test_ram_step_matches_equations():
    m = randomise(_ram(), seed=4).eval()
    x, l, h = _ram_inputs(seed=5)
    rho, h_next, l_next = m(x, l, h)
    lin = lambda mod, t: t @ mod.weight.T + mod.bias  # noqa: E731
    h_g = torch.relu(lin(m.fc_glimpse, rho.flatten(1)))
    h_l = torch.relu(lin(m.fc_loc, l))
    g = torch.relu(lin(m.fc_what, h_g) + lin(m.fc_where, h_l))
    ref_h = torch.relu(lin(m.core_g, g) + lin(m.core_h, h))
    close(h_next, ref_h)
    close(l_next, lin(m.locator, ref_h))  # eval mode: the policy mean


def test_ram_location_sampling_is_reproducible():
    m = _ram().train()
    x, l, h = _ram_inputs()

    def run(seed):
        return m(x, l, h, generator=torch.Generator().manual_seed(seed))[2]

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    mu = m.location_mean(m(x, l, h, generator=torch.Generator().manual_seed(0))[1])
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    close(a, mu + 0.11 * eps)


# ---------------------------------------------------------------------------- glimpse

GN = glimpse.GlimpseNetworkStep


def _gn(**kw):
    cfg = dict(glimpse_size=4, num_scales=2, conv_channels=(4, 5, 6), features=8, hidden_size=7)
    cfg.update(kw)
    return GN(3, **cfg)


def _gn_inputs(b=2, h=12, w=10, hidden=7, seed=0):
    l = (rand(b, 2, seed=seed + 1) * 0.4).clamp(-0.9, 0.9)
    return rand(b, 3, h, w, seed=seed), l, rand(b, 4, hidden, seed=seed + 2)


@pytest.mark.parametrize("b,h,w", [(2, 12, 10), (1, 7, 9), (3, 5, 5)])
def test_glimpse_forward_backward(b, h, w):
    rho, h_next, l_next = forward_backward(_gn().eval(), *_gn_inputs(b, h, w))
    assert rho.shape == (b, 6, 4, 4) and h_next.shape == (b, 4, 7) and l_next.shape == (b, 2)


def test_glimpse_train_eval():
    outs = train_and_eval(_gn(), *_gn_inputs())
    assert [o.shape for o in outs] == [(2, 6, 4, 4), (2, 4, 7), (2, 2)]


def test_glimpse_gradcheck():
    m = _gn(glimpse_size=2, conv_channels=(2, 2, 3), conv_kernels=(3, 3, 3), features=3, hidden_size=3)
    x, l, h = _gn_inputs(b=2, h=5, w=6, hidden=3, seed=3)
    gradcheck(m, x, l + 0.013, h)


def _lstm_by_hand(cell, inp, h, c):
    gates = inp @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c2), c2


def test_glimpse_step_matches_equations():
    m = _gn().eval()
    x, l, h = _gn_inputs(seed=4)
    rho, h_next, l_next = m(x, l, h)
    t = torch.relu(F.conv2d(rho, m.conv1.weight, m.conv1.bias, padding=2))
    t = torch.relu(F.conv2d(t, m.conv2.weight, m.conv2.bias, padding=1))
    t = torch.relu(F.conv2d(t, m.conv3.weight, m.conv3.bias, padding=1))
    g = torch.relu(t.flatten(1) @ m.fc_image.weight.T + m.fc_image.bias) * torch.relu(
        l @ m.fc_loc.weight.T + m.fc_loc.bias
    )  # multiplicative "what" x "where"
    h1, c1 = _lstm_by_hand(m.lstm1, g, h[:, 0], h[:, 1])
    h2, c2 = _lstm_by_hand(m.lstm2, h1, h[:, 2], h[:, 3])
    close(h_next, torch.stack([h1, c1, h2, c2], 1))
    close(l_next, h2 @ m.emission.weight.T + m.emission.bias)
    close(rho[:, :3], m.glimpse(x, l)[:, :3])


def test_glimpse_location_gates_the_features():
    # g = G_image * G_loc: a location pathway that outputs zero silences the glimpse.
    m = _gn()
    with torch.no_grad():
        m.fc_loc.weight.zero_()
        m.fc_loc.bias.fill_(-1.0)
    x, l, _ = _gn_inputs()
    assert torch.all(m.features(m.glimpse(x, l), l) == 0)


def test_glimpse_location_sampling_is_reproducible():
    m = _gn().train()
    x, l, h = _gn_inputs()

    def run(seed):
        return m(x, l, h, generator=torch.Generator().manual_seed(seed))[2]

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with torch.no_grad():
        m.eval()
        assert torch.equal(m(x, l, h)[2], m(x, l, h)[2])


# ---------------------------------------------------------------------------- parameter counts

PARAMS_AT_256 = {
    "non_local": lambda: non_local.NonLocal(256),
    "stn": lambda: stn.SpatialTransformer(256),
    "attention_gate": lambda: attention_gate.AttentionGate(256),
    "gcnet": lambda: gcnet.GlobalContext(256),
    "a2net": lambda: a2net.DoubleAttention(256),
    "ccnet": lambda: ccnet.CrissCrossAttention(256),
    "emanet": lambda: emanet.EMAttention(256),
    "dcn": lambda: dcn.DeformableConv2d(256),
    "show_attend_tell": lambda: show_attend_tell.SoftHardAttention(256),
    "ram": lambda: ram.RecurrentAttentionStep(256),
    "glimpse": lambda: glimpse.GlimpseNetworkStep(256),
}


def test_reference_alias_and_param_counts():
    for name, make in PARAMS_AT_256.items():
        assert type(make()) is globals()[name].Reference
    assert param_count(non_local.NonLocal(256)) == 4 * 256 * 128 + 3 * 128 + 256 + 2 * 256
    assert param_count(gcnet.GlobalContext(256)) == 256 + 1 + 256 * 16 + 16 + 2 * 16 + 16 * 256 + 256
    assert param_count(ccnet.CrissCrossAttention(256)) == 2 * (256 * 32 + 32) + 256 * 256 + 256 + 1
