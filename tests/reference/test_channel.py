"""Tests of the channel-attention and branch-attention eager references.

senet, gsopnet, srm, gct, ecanet, fcanet, encnet, bilinear_attention, highway, resnest,
condconv. Each mechanism gets: forward/backward at several shapes (batch 1, odd and
non-square sizes, every supported spatial rank), train and eval mode, a float64
gradcheck on a tiny size, and checks of its own identities computed independently of the
module's code path.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.reference import (
    bilinear_attention,
    condconv,
    ecanet,
    encnet,
    fcanet,
    gct,
    gsopnet,
    highway,
    resnest,
    senet,
    srm,
)
from tests.reference.harness import forward_backward, gradcheck, param_count, train_and_eval


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def randomize(module, seed=1, scale=0.5):
    """Give every parameter and BatchNorm running statistic a random, non-trivial value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen, dtype=b.dtype) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen, dtype=b.dtype) + 0.5)
    return module


def bn_eval(z, bn, channel_dim=1):
    """Eval-mode BatchNorm written out: (z - mean) / sqrt(var + eps) * weight + bias."""
    shape = [1] * z.dim()
    shape[channel_dim] = -1
    mean, var = bn.running_mean.view(shape), bn.running_var.view(shape)
    return (z - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(shape) + bn.bias.view(shape)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# --------------------------------------------------------------------------------------
# SENet
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 16, 5), (2, 16, 3, 5), (1, 16, 2, 3, 4), (3, 16, 7, 1)])
def test_senet_shapes(shape):
    module = senet.Reference(16, reduction=4)
    out = forward_backward(module, randn(*shape))
    assert out.shape == shape


def test_senet_train_eval_and_gradcheck():
    train_and_eval(senet.Reference(32), randn(2, 32, 4, 6))
    gradcheck(senet.Reference(8, reduction=2), randn(2, 8, 3, 5))
    gradcheck(senet.Reference(8, reduction=4), randn(2, 8, 3, 2, 2))


def test_senet_closed_form():
    module = randomize(senet.Reference(8, reduction=2)).double()
    x = randn(2, 8, 3, 5, dtype=torch.float64)
    xn = x.numpy()
    p = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    squeeze = xn.reshape(2, 8, -1).sum(axis=2) / 15.0
    hidden = np.maximum(squeeze @ p["fc1.weight"].T + p["fc1.bias"], 0.0)
    s = sigmoid(hidden @ p["fc2.weight"].T + p["fc2.bias"])
    np.testing.assert_allclose(module(x).detach().numpy(), xn * s[:, :, None, None], rtol=1e-12)


def test_senet_param_count():
    assert param_count(senet.Reference(256)) == 256 * 16 + 16 + 16 * 256 + 256


# --------------------------------------------------------------------------------------
# GSoP-Net
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,stride", [((1, 12, 5, 7), 1), ((2, 12, 4, 4), 1), ((2, 12, 7, 9), 2)])
def test_gsop_shapes(shape, stride):
    module = gsopnet.Reference(12, att_dim=6, reduce_stride=stride)
    out = forward_backward(module, randn(*shape))
    assert out.shape == shape


def test_gsop_train_eval_and_gradcheck():
    train_and_eval(gsopnet.Reference(16, att_dim=8), randn(2, 16, 5, 6))
    module = randomize(gsopnet.Reference(4, att_dim=3), scale=0.3)
    gradcheck(module, randn(2, 4, 3, 5))


def test_gsop_closed_form():
    torch.manual_seed(0)
    module = randomize(gsopnet.Reference(5, att_dim=3), scale=0.4).double().eval()
    x = randn(2, 5, 3, 4, dtype=torch.float64)
    z = torch.relu(x)
    z = torch.einsum("dc,bchw->bdhw", module.reduce_conv.weight[:, :, 0, 0], z)
    z = z + module.reduce_conv.bias.view(1, -1, 1, 1)
    z = torch.relu(bn_eval(z, module.reduce_bn)).flatten(2)  # [B, d, M]
    m = z.shape[2]
    cov = torch.zeros(2, 3, 3, dtype=torch.float64)
    for b in range(2):
        mu = z[b].mean(dim=1)
        for p in range(m):
            cov[b] += torch.outer(z[b, :, p] - mu, z[b, :, p] - mu) / m
    cov = bn_eval(cov, module.row_bn)  # rows are the BN channels
    w = module.row_conv.weight[:, 0, :, 0]  # [4d, d]: output 4i+o reads row i
    r = torch.stack([w[4 * i : 4 * i + 4] @ cov[:, i].T for i in range(3)], 0)  # [d, 4, B]
    r = r.permute(2, 0, 1).reshape(2, 12) + module.row_conv.bias
    s = torch.sigmoid(r @ module.fc.weight[:, :, 0, 0].T + module.fc.bias)
    torch.testing.assert_close(module(x), x * s[:, :, None, None], rtol=1e-10, atol=1e-12)


def test_gsop_covariance_is_orderless_and_uses_rectified_input():
    module = randomize(gsopnet.Reference(6, att_dim=4)).eval()
    x = randn(2, 6, 4, 5)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    shuffled = x.flatten(2)[:, :, perm].view_as(x)
    expected = module(x).flatten(2)[:, :, perm].view_as(x)
    torch.testing.assert_close(module(shuffled), expected)
    # pre_relu: only relu(x) reaches the attention branch
    more_negative = torch.where(x < 0, 3 * x, x)
    torch.testing.assert_close(module.gate(more_negative), module.gate(x))
    module.pre_relu = False
    assert not torch.allclose(module.gate(more_negative), module.gate(x))


def test_gsop_param_count():
    c, d = 256, 128
    expected = (c * d + d) + 2 * d + 2 * d + (4 * d * d + 4 * d) + (4 * d * c + c)
    assert param_count(gsopnet.Reference(c)) == expected


# --------------------------------------------------------------------------------------
# SRM
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 8, 5), (2, 8, 3, 5), (3, 8, 2, 3, 4)])
def test_srm_shapes(shape):
    module = randomize(srm.Reference(8))
    out = train_and_eval(module, randn(*shape))
    assert out.shape == shape


@pytest.mark.parametrize("shape", [(1, 8, 7), (1, 8, 4, 3), (1, 8, 2, 2, 3)])
def test_srm_batch1_eval(shape):
    module = randomize(srm.Reference(8)).eval()
    out = forward_backward(module, randn(*shape))
    assert out.shape == shape


def test_srm_gradcheck():
    gradcheck(randomize(srm.Reference(4)), randn(2, 4, 3, 5))
    gradcheck(randomize(srm.Reference(4, unbiased=False, eps=1e-5)), randn(3, 4, 6))


def test_srm_zero_init_halves_input():
    module = srm.Reference(6)
    x = randn(4, 6, 3, 5)
    torch.testing.assert_close(module(x), 0.5 * x)  # train mode: BN(0) = bias = 0
    module.eval()
    torch.testing.assert_close(module(x), 0.5 * x)


@pytest.mark.parametrize("unbiased", [True, False])
def test_srm_closed_form(unbiased):
    module = randomize(srm.Reference(5, unbiased=unbiased)).double().eval()
    x = randn(3, 5, 4, 3, dtype=torch.float64)
    flat = x.numpy().reshape(3, 5, -1)
    mean, std = flat.mean(axis=2), flat.std(axis=2, ddof=1 if unbiased else 0)
    cfc = module.cfc.detach().numpy()
    z = torch.from_numpy(mean * cfc[:, 0] + std * cfc[:, 1])
    s = torch.sigmoid(bn_eval(z, module.bn))
    torch.testing.assert_close(module(x), x * s[:, :, None, None])


def test_srm_param_count():
    assert param_count(srm.Reference(256)) == 256 * 2 + 2 * 256


# --------------------------------------------------------------------------------------
# GCT
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 6, 7), (1, 6, 3, 5), (2, 6, 2, 3, 4)])
@pytest.mark.parametrize("mode", ["l2", "l1"])
def test_gct_shapes_and_identity_at_init(shape, mode):
    module = gct.Reference(6, mode=mode)
    x = randn(*shape)
    torch.testing.assert_close(module(x), x, rtol=0, atol=0)  # γ = β = 0: gate exactly 1
    randomize(module)
    out = train_and_eval(module, x)
    assert out.shape == shape and not torch.allclose(out, x)


@pytest.mark.parametrize("mode,after_relu", [("l2", False), ("l1", False), ("l1", True)])
def test_gct_gradcheck(mode, after_relu):
    x = randn(2, 4, 3, 5)
    if after_relu:
        x = x.relu()
    gradcheck(randomize(gct.Reference(4, mode=mode, after_relu=after_relu)), x)


@pytest.mark.parametrize("mode", ["l2", "l1"])
def test_gct_closed_form(mode):
    module = randomize(gct.Reference(5, mode=mode)).double()
    x = randn(2, 5, 3, 4, dtype=torch.float64)
    xn = x.numpy().reshape(2, 5, -1)
    alpha, gamma, beta = (getattr(module, n).detach().numpy() for n in ("alpha", "gamma", "beta"))
    eps = module.eps
    if mode == "l2":
        s = np.sqrt((xn**2).sum(axis=2) + eps) * alpha
        s_hat = gamma * s / np.sqrt((s**2).mean(axis=1, keepdims=True) + eps)
    else:
        s = np.abs(xn).sum(axis=2) * alpha
        s_hat = gamma * s / (np.abs(s).mean(axis=1, keepdims=True) + eps)
    gate = 1.0 + np.tanh(s_hat + beta)
    np.testing.assert_allclose(module(x).detach().numpy(), x.numpy() * gate[:, :, None, None], rtol=1e-12)


def test_gct_matches_paper_normalisation_up_to_epsilon():
    # paper: ŝ_c = sqrt(C)·s_c / ||s||_2; the code divides by sqrt(mean s² + ε)
    module = randomize(gct.Reference(7, eps=0.0)).double()
    x = randn(2, 7, 4, 4, dtype=torch.float64)
    s = x.flatten(2).norm(dim=2) * module.alpha
    s_hat = math.sqrt(7) * s / s.norm(dim=1, keepdim=True)
    gate = 1 + torch.tanh(module.gamma * s_hat + module.beta)
    torch.testing.assert_close(module(x), x * gate[:, :, None, None])


def test_gct_param_count():
    assert param_count(gct.Reference(256)) == 3 * 256


# --------------------------------------------------------------------------------------
# ECA-Net
# --------------------------------------------------------------------------------------


def test_eca_adaptive_kernel_size():
    table = {4: 1, 16: 3, 64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7}
    assert {c: ecanet.adaptive_kernel_size(c) for c in table} == table
    assert ecanet.Reference(2048).conv.weight.shape == (1, 1, 7)
    assert ecanet.Reference(256, k_size=3).conv.weight.shape == (1, 1, 3)


@pytest.mark.parametrize("shape", [(1, 16, 5), (2, 16, 3, 5), (1, 16, 2, 3, 4)])
@pytest.mark.parametrize("shared", [True, False])
def test_eca_shapes(shape, shared):
    module = ecanet.Reference(16, shared=shared)
    out = forward_backward(module, randn(*shape))
    assert out.shape == shape
    train_and_eval(module, randn(*shape))


@pytest.mark.parametrize("shared", [True, False])
def test_eca_gradcheck(shared):
    gradcheck(ecanet.Reference(8, shared=shared), randn(2, 8, 3, 5))


@pytest.mark.parametrize("shared", [True, False])
def test_eca_closed_form(shared):
    c, k = 9, 5
    module = randomize(ecanet.Reference(c, k_size=k, shared=shared)).double()
    x = randn(2, c, 4, 3, dtype=torch.float64)
    y = x.numpy().mean(axis=(2, 3))
    w = module.conv.weight.detach().numpy()
    z = np.zeros_like(y)
    for ch in range(c):
        weights = w[0, 0] if shared else w[ch, 0]
        for j in range(k):
            src = ch + j - (k - 1) // 2
            if 0 <= src < c:  # zero padding at both ends of the channel axis
                z[:, ch] += weights[j] * y[:, src]
    np.testing.assert_allclose(module(x).detach().numpy(), x.numpy() * sigmoid(z)[:, :, None, None], rtol=1e-12)


def test_eca_param_count():
    assert param_count(ecanet.Reference(256)) == 5
    assert param_count(ecanet.Reference(256, shared=False)) == 256 * 5


# --------------------------------------------------------------------------------------
# FcaNet
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,dct", [((1, 16, 7, 7), 7), ((2, 32, 5, 9), 7), ((1, 16, 14, 14), 14), ((2, 16, 3, 11), 14)]
)
def test_fcanet_shapes(shape, dct):
    module = fcanet.Reference(shape[1], reduction=4, dct_h=dct, dct_w=dct)
    out = forward_backward(module, randn(*shape))
    assert out.shape == shape
    train_and_eval(module, randn(*shape))


def test_fcanet_gradcheck():
    gradcheck(fcanet.Reference(16, reduction=4), randn(2, 16, 3, 5))
    gradcheck(fcanet.Reference(16, reduction=4, freq_sel_method="low4"), randn(2, 16, 7, 7))


def test_fcanet_dct_basis_is_orthonormal():
    basis = torch.stack(
        [
            torch.outer(fcanet.dct_basis_1d(u, 7), fcanet.dct_basis_1d(v, 7)).flatten()
            for u in range(7)
            for v in range(7)
        ]
    )
    torch.testing.assert_close(basis @ basis.T, torch.eye(49, dtype=torch.float64))


def test_fcanet_filter_bank_layout():
    module = fcanet.Reference(32)  # top16: 16 parts of 2 channels
    h = np.arange(7)
    for part, (u, v) in [(0, (0, 0)), (2, (6, 0)), (3, (0, 5)), (15, (2, 2))]:
        bu = np.cos(np.pi * u * (h + 0.5) / 7) / np.sqrt(7) * (np.sqrt(2) if u else 1)
        bv = np.cos(np.pi * v * (h + 0.5) / 7) / np.sqrt(7) * (np.sqrt(2) if v else 1)
        for ch in (2 * part, 2 * part + 1):
            np.testing.assert_allclose(module.dct_weight[ch].numpy(), np.outer(bu, bv), atol=1e-6)
    assert fcanet.Reference(16, dct_h=14, dct_w=14).frequencies[2] == (12, 0)
    assert "dct_weight" not in dict(module.named_parameters())


def test_fcanet_lowest_frequency_is_scaled_gap():
    # With only the (0, 0) frequency the pooled value is sqrt(HW) · GAP: an SE block
    # without biases on 7 · GAP for a 7 x 7 input.
    module = randomize(fcanet.Reference(8, reduction=2, freq_sel_method="top1")).double()
    x = randn(2, 8, 7, 7, dtype=torch.float64)
    pooled = 7.0 * x.mean(dim=(2, 3))
    s = torch.sigmoid(torch.relu(pooled @ module.fc1.weight.T) @ module.fc2.weight.T)
    torch.testing.assert_close(module(x), x * s[:, :, None, None])
    # a non-7x7 input is first average-pooled to 7 x 7
    x2 = randn(2, 8, 14, 21, dtype=torch.float64)
    torch.testing.assert_close(
        module(x2)[..., :1, :1] / x2[..., :1, :1],
        module(F.adaptive_avg_pool2d(x2, 7))[..., :1, :1] / F.adaptive_avg_pool2d(x2, 7)[..., :1, :1],
    )


def test_fcanet_param_count():
    assert param_count(fcanet.Reference(256)) == 2 * 256 * 16


# --------------------------------------------------------------------------------------
# EncNet context encoding
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 8, 5, 7), (2, 8, 4, 4), (3, 8, 1, 6)])
@pytest.mark.parametrize("residual", [False, True])
def test_encnet_shapes(shape, residual):
    module = encnet.Reference(8, num_classes=5, ncodes=4, residual=residual)
    y, logits = forward_backward(module, randn(*shape))
    assert y.shape == shape and logits.shape == (shape[0], 5)
    train_and_eval(module, randn(*shape))


def test_encnet_gradcheck():
    gradcheck(randomize(encnet.Reference(4, num_classes=2, ncodes=3), scale=0.3), randn(2, 4, 3, 5))


def test_encnet_encoding_closed_form():
    module = randomize(encnet.Reference(3, num_classes=2, ncodes=2)).double().eval()
    x = randn(2, 3, 2, 3, dtype=torch.float64)
    f = torch.relu(bn_eval(torch.einsum("oc,bchw->bohw", module.conv.weight[:, :, 0, 0], x), module.bn)).flatten(2)
    d, s = module.codewords.detach(), module.scale.detach()
    expected = torch.zeros(2, 2, 3, dtype=torch.float64)
    for b in range(2):
        for i in range(6):
            logits = torch.stack([s[k] * ((f[b, :, i] - d[k]) ** 2).sum() for k in range(2)])
            a = torch.exp(logits) / torch.exp(logits).sum()
            for k in range(2):
                expected[b, k] += a[k] * (f[b, :, i] - d[k])
    torch.testing.assert_close(module.encode(x), expected)
    e = torch.relu(bn_eval(expected, module.code_bn)).mean(dim=1)
    gamma = torch.sigmoid(e @ module.fc.weight.T + module.fc.bias)
    y, logits = module(x)
    torch.testing.assert_close(y, x * gamma[:, :, None, None])
    torch.testing.assert_close(logits, e @ module.selayer.weight.T + module.selayer.bias)


def test_encnet_assignment_and_variants():
    module = randomize(encnet.Reference(6, num_classes=3, ncodes=5))
    feats = randn(2, 7, 6)
    torch.testing.assert_close(module.assignment(feats).sum(dim=2), torch.ones(2, 7))
    module.eval()
    x = randn(2, 6, 4, 5)
    y, logits = module(x)
    module.residual = True
    y_res, logits_res = module(x)
    torch.testing.assert_close(y_res, torch.relu(x + y))
    torch.testing.assert_close(logits_res, logits)
    # the encoding is orderless: shuffling positions permutes y and keeps the logits
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(2))
    y_perm, logits_perm = module(x.flatten(2)[:, :, perm].view_as(x))
    torch.testing.assert_close(logits_perm, logits)
    torch.testing.assert_close(y_perm, y_res.flatten(2)[:, :, perm].view_as(x))


def test_encnet_init_and_param_count():
    module = encnet.Reference(256)
    assert (module.scale <= 0).all() and (module.scale >= -1).all()
    assert module.codewords.abs().max() <= 1 / math.sqrt(32 * 256)
    c, k, n = 256, 32, 21
    assert param_count(module) == c * c + 2 * c + k * c + k + 2 * k + (c * c + c) + (c * n + n)


# --------------------------------------------------------------------------------------
# Bilinear attention (attention in attention)
# --------------------------------------------------------------------------------------


def test_bilinear_pair_order_matches_diagonals():
    m = 4
    phi = randn(2, m, 3, 5)
    outer = torch.einsum("bihw,bjhw->bhwij", phi, phi)
    diagonals = torch.cat([torch.diagonal(outer, offset=-i, dim1=3, dim2=4) for i in range(m)], dim=3)
    module = bilinear_attention.Reference(4 * m, reduction=4)
    torch.testing.assert_close(module.bilinear(phi), diagonals.permute(0, 3, 1, 2))
    assert module.bilinear(phi).shape[1] == m * (m + 1) // 2


@pytest.mark.parametrize("shape", [(2, 32, 5, 7), (3, 32, 4, 4)])
def test_bilinear_shapes_train(shape):
    module = bilinear_attention.Reference(32, reduction=8)
    out = train_and_eval(module, randn(*shape))
    assert out.shape == shape


@pytest.mark.parametrize("shape", [(1, 32, 5, 7), (1, 32, 1, 9)])
def test_bilinear_batch1_eval(shape):
    module = randomize(bilinear_attention.Reference(32, reduction=8)).eval()
    assert forward_backward(module, randn(*shape)).shape == shape


def test_bilinear_gradcheck():
    gradcheck(randomize(bilinear_attention.Reference(8, reduction=4), scale=0.4), randn(2, 8, 3, 5))


def test_bilinear_closed_form_and_gate_range():
    module = randomize(bilinear_attention.Reference(6, reduction=2)).double().eval()  # m = 3
    x = randn(2, 6, 3, 4, dtype=torch.float64)

    def block(blk, z):
        z = torch.einsum("oc,bchw->bohw", blk.conv.weight[:, :, 0, 0], z) + blk.conv.bias.view(1, -1, 1, 1)
        return torch.relu(bn_eval(z, blk.bn))

    phi = block(module.phi, x)
    pairs = [(0, 0), (1, 1), (2, 2), (1, 0), (2, 1), (2, 0)]
    b = torch.stack([phi[:, i] * phi[:, j] for i, j in pairs], dim=1)
    inner = block(module.inner, b.mean(dim=(2, 3), keepdim=True))
    outer = block(module.outer, b)
    gate = torch.sigmoid(inner * outer)
    y = module(x)
    torch.testing.assert_close(y, x * gate)
    ratio = module.gate(x)
    assert (ratio >= 0.5).all() and (ratio < 1).all()


def test_bilinear_param_count():
    m, p, c = 16, 136, 256
    assert param_count(bilinear_attention.Reference(c)) == (c * m + m + 2 * m) + 2 * (p * c + c + 2 * c)


# --------------------------------------------------------------------------------------
# Highway
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 6), (2, 6, 5), (1, 6, 3, 5), (2, 6, 2, 3, 4)])
def test_highway_shapes(shape):
    module = highway.Reference(6)
    out = forward_backward(module, randn(*shape))
    assert out.shape == shape
    train_and_eval(module, randn(*shape))


def test_highway_conv_variant_shapes():
    module = highway.Reference(6, kernel_size=3)
    assert forward_backward(module, randn(1, 6, 5, 7)).shape == (1, 6, 5, 7)


@pytest.mark.parametrize("kernel_size,activation", [(1, "relu"), (3, "tanh")])
def test_highway_gradcheck(kernel_size, activation):
    module = highway.Reference(4, kernel_size=kernel_size, activation=activation)
    gradcheck(module, randn(2, 4, 3, 5))


def test_highway_closed_form():
    module = randomize(highway.Reference(5)).double()
    x = randn(2, 5, 3, 4, dtype=torch.float64)
    xc = x.movedim(1, -1)
    h = torch.relu(xc @ module.H.weight.T + module.H.bias)
    t = torch.sigmoid(xc @ module.T.weight.T + module.T.bias)
    torch.testing.assert_close(module(x), (h * t + xc * (1 - t)).movedim(-1, 1))


def test_highway_gate_bias_and_carry():
    module = highway.Reference(5)
    assert torch.equal(module.T.bias, torch.full((5,), -2.0))
    x = randn(3, 5, 4)
    with torch.no_grad():
        module.T.weight.zero_()
        module.T.bias.fill_(-2.0)
    t = torch.sigmoid(torch.tensor(-2.0))
    h = torch.relu(module.H(x.transpose(1, 2))).transpose(1, 2)
    torch.testing.assert_close(module(x), t * h + (1 - t) * x)
    with torch.no_grad():
        module.T.bias.fill_(-40.0)  # gate closed: the layer carries its input
    torch.testing.assert_close(module(x), x)


def test_highway_param_count():
    assert param_count(highway.Reference(256)) == 2 * (256 * 256 + 256)


# --------------------------------------------------------------------------------------
# ResNeSt split attention
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,shape,out_shape",
    [
        (dict(), (2, 8, 5, 7), (2, 8, 5, 7)),
        (dict(groups=2, radix=2, stride=2, out_channels=12), (2, 8, 7, 9), (2, 12, 4, 5)),
        (dict(radix=4), (3, 8, 3, 3), (3, 8, 3, 3)),
        (dict(radix=1), (2, 8, 4, 6), (2, 8, 4, 6)),
    ],
)
def test_resnest_shapes(kwargs, shape, out_shape):
    module = resnest.Reference(8, **kwargs)
    out = train_and_eval(module, randn(*shape))
    assert out.shape == out_shape


def test_resnest_batch1_eval():
    module = randomize(resnest.Reference(8, groups=2), scale=0.3).eval()
    assert forward_backward(module, randn(1, 8, 5, 3)).shape == (1, 8, 5, 3)


def test_resnest_gradcheck():
    gradcheck(randomize(resnest.Reference(4, groups=2, radix=2, reduction_factor=4), scale=0.3), randn(2, 4, 3, 5))
    gradcheck(randomize(resnest.Reference(2, radix=1, norm=False), scale=0.3), randn(2, 2, 3, 3))


@pytest.mark.parametrize("radix", [2, 3])
def test_resnest_attention_normalised_over_splits(radix):
    module = randomize(resnest.Reference(6 * radix, groups=2, radix=radix)).eval()
    a = module.attention(module.splits(randn(2, 6 * radix, 4, 5)))
    torch.testing.assert_close(a.sum(dim=1), torch.ones(2, 6 * radix))
    single = randomize(resnest.Reference(6, radix=1)).eval()
    a1 = single.attention(single.splits(randn(2, 6, 4, 5)))
    assert a1.shape == (2, 1, 6) and ((a1 > 0) & (a1 < 1)).all()


def test_resnest_closed_form_layout():
    # cardinality G=2, radix R=2, C'=4 (2 channels per cardinal group), eval mode
    g_, r_, c_ = 2, 2, 4
    module = (
        randomize(resnest.Reference(4, out_channels=c_, groups=g_, radix=r_, kernel_size=1), scale=0.4).double().eval()
    )
    x = randn(2, 4, 3, 3, dtype=torch.float64)
    u = torch.relu(bn_eval(F.conv2d(x, module.conv.weight, None, groups=g_ * r_), module.bn0))
    splits = [u[:, r * c_ : (r + 1) * c_] for r in range(r_)]  # radix-major
    gap = sum(splits).mean(dim=(2, 3))  # [B, C']
    w1, b1 = module.fc1.weight[:, :, 0, 0], module.fc1.bias  # [inter, C'/G]
    inter = w1.shape[0]
    z = (
        torch.cat(
            [gap[:, g * 2 : (g + 1) * 2] @ w1[g * inter // g_ : (g + 1) * inter // g_].T for g in range(g_)], dim=1
        )
        + b1
    )
    z = torch.relu(bn_eval(z, module.bn1))
    w2, b2 = module.fc2.weight[:, :, 0, 0], module.fc2.bias  # [C'·R, inter/G]
    per_group = c_ * r_ // g_
    logits = (
        torch.cat(
            [
                z[:, g * inter // g_ : (g + 1) * inter // g_] @ w2[g * per_group : (g + 1) * per_group].T
                for g in range(g_)
            ],
            dim=1,
        )
        + b2
    )
    # fc2 output index: g·(R·C'/G) + r·(C'/G) + j  ->  split r, channel g·(C'/G) + j
    att = torch.zeros(2, r_, c_, dtype=torch.float64)
    for g in range(g_):
        for j in range(c_ // g_):
            column = torch.stack([logits[:, g * per_group + r * (c_ // g_) + j] for r in range(r_)], 1)
            att[:, :, g * (c_ // g_) + j] = torch.softmax(column, dim=1)
    expected = sum(att[:, r, :, None, None] * splits[r] for r in range(r_))
    torch.testing.assert_close(module(x), expected)


def test_resnest_param_count():
    # main conv has groups = cardinality · radix = 2: each split sees C / 2 input channels
    c, r, inter = 256, 2, 128
    expected = (c * r * (c // r) * 9) + 2 * c * r + (c * inter + inter) + 2 * inter + (inter * c * r + c * r)
    assert param_count(resnest.Reference(256)) == expected


# --------------------------------------------------------------------------------------
# CondConv
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,shape,out_shape",
    [
        (dict(), (1, 4, 5, 7), (1, 4, 5, 7)),
        (dict(stride=2, out_channels=6, bias=True), (2, 4, 6, 3), (2, 6, 3, 2)),
        (dict(groups=4, num_experts=3), (3, 4, 4, 4), (3, 4, 4, 4)),
        (dict(kernel_size=1, num_experts=2), (2, 4, 1, 5), (2, 4, 1, 5)),
    ],
)
def test_condconv_shapes(kwargs, shape, out_shape):
    module = condconv.Reference(4, **kwargs)
    out = train_and_eval(module, randn(*shape))
    assert out.shape == out_shape


def test_condconv_gradcheck():
    gradcheck(condconv.Reference(3, num_experts=3, bias=True), randn(2, 3, 3, 5))
    gradcheck(condconv.Reference(4, groups=2, num_experts=2, stride=2), randn(2, 4, 3, 5))


@pytest.mark.parametrize("kwargs", [dict(), dict(bias=True, groups=2, out_channels=6, stride=2)])
def test_condconv_is_routed_mixture_of_expert_convolutions(kwargs):
    module = randomize(condconv.Reference(4, num_experts=3, **kwargs)).double()
    x = randn(3, 4, 5, 6, dtype=torch.float64)
    alpha = torch.sigmoid(x.mean(dim=(2, 3)) @ module.routing.weight.T + module.routing.bias)
    outs = []
    for b in range(3):  # linearity: Σ_e α_e (W_e * x) = (Σ_e α_e W_e) * x
        y = 0
        for e in range(3):
            bias = module.bias[e] if module.bias is not None else None
            y = y + alpha[b, e] * F.conv2d(
                x[b : b + 1], module.weight[e], bias, module.stride, module.padding, groups=module.groups
            )
        outs.append(y)
    torch.testing.assert_close(module(x), torch.cat(outs))
    # routing is per example: changing one example does not change another's output
    x2 = x.clone()
    x2[0] += 1.0
    torch.testing.assert_close(module(x2)[1:], module(x)[1:])
    assert not torch.allclose(module(x2)[0], module(x)[0])


def test_condconv_param_count():
    c, e = 256, 8
    assert param_count(condconv.Reference(c)) == (c * e + e) + e * c * c * 9
