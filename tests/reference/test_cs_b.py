"""Tests of the hand-written references: sca_cnn, danet, rga, scnet, strip_pooling,
gala, sta_lstm, rstan, sta, stgcn.

Each mechanism gets: forward/backward at several shapes (batch 1, odd and
non-square sizes), train and eval mode, float64 gradcheck on a tiny size, and
the mechanism's own identities recomputed by hand from the paper's equations.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.reference import danet, gala, rga, rstan, sca_cnn, scnet, sta, sta_lstm, stgcn, strip_pooling
from tests.reference.harness import forward_backward, gradcheck, param_count, train_and_eval


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def randomize_bn(bns):
    """Non-trivial running statistics and affine values, so eval-mode BN is not the identity."""
    with torch.no_grad():
        for bn in bns:
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)


def seeded(seed=0):
    torch.manual_seed(seed)


def test_every_module_exports_reference():
    for mod in (sca_cnn, danet, rga, scnet, strip_pooling, gala, sta_lstm, rstan, sta, stgcn):
        assert isinstance(mod.Reference, type) and mod.__doc__ and len(mod.__doc__) > 200


# --------------------------------------------------------------------------- sca_cnn

SCA_ORDERS = ("channel_spatial", "spatial_channel", "channel", "spatial")


@pytest.mark.parametrize("order", SCA_ORDERS)
@pytest.mark.parametrize("shape", [(1, 8, 5, 7), (2, 6, 3, 4), (3, 4, 1, 9)])
def test_sca_cnn_shapes(order, shape):
    seeded()
    m = sca_cnn.SCACNN(shape[1], hidden_size=6, attn_dim=5, order=order)
    out = forward_backward(m, rand(*shape), rand(shape[0], 6, seed=1))
    assert out.shape == shape


def test_sca_cnn_any_spatial_rank():
    seeded()
    m = sca_cnn.SCACNN(4, hidden_size=3, attn_dim=5)
    h = rand(2, 3, seed=1)
    for shape in [(2, 4, 7), (2, 4, 2, 3, 3)]:
        x = rand(*shape)
        out = forward_backward(m, x, h)
        torch.testing.assert_close(out, m(x.reshape(2, 4, 1, -1), h).reshape(shape))


def test_sca_cnn_train_eval_and_gradcheck():
    seeded()
    m = sca_cnn.SCACNN(8, hidden_size=6, attn_dim=5)
    train_and_eval(m, rand(2, 8, 5, 3), rand(2, 6, seed=1))
    for order in ("channel_spatial", "spatial_channel"):
        for rescale in (True, False):
            seeded(1)
            small = sca_cnn.SCACNN(4, hidden_size=3, attn_dim=5, order=order, rescale=rescale)
            gradcheck(small, rand(2, 4, 3, 5, seed=2), rand(2, 3, seed=3))


def _sca_by_hand(m, x, h):
    """The paper's equations, one channel / one location at a time (float64)."""
    B, C = x.shape[:2]
    V = x.reshape(B, C, -1)
    M = V.shape[2]
    cs, ms = (C, M) if m.rescale else (1, 1)
    out = torch.empty_like(V)
    for b in range(B):
        v = V[b]
        # channel-wise: outer product of W_c (k-vector) with each channel mean
        scores = []
        for c in range(C):
            lifted = m.W_c.weight[:, 0] * v[c].mean() + m.W_c.bias
            bc = torch.tanh(lifted + m.W_hc.weight @ h[b])
            scores.append(m.W_ic.weight[0] @ bc + m.W_ic.bias[0])
        beta = torch.softmax(torch.stack(scores), 0)
        vc = v * beta[:, None] * cs
        scores = []
        for k in range(M):
            a = torch.tanh(m.W_s.weight @ vc[:, k] + m.W_s.bias + m.W_hs.weight @ h[b])
            scores.append(m.W_is.weight[0] @ a + m.W_is.bias[0])
        alpha = torch.softmax(torch.stack(scores), 0)
        out[b] = vc * alpha[None, :] * ms
    return out.reshape(x.shape)


@pytest.mark.parametrize("rescale", [True, False])
def test_sca_cnn_matches_paper_equations(rescale):
    seeded(2)
    m = sca_cnn.SCACNN(5, hidden_size=4, attn_dim=6, rescale=rescale).double()
    x, h = rand(2, 5, 3, 4, seed=4, dtype=torch.float64), rand(2, 4, seed=5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(m(x, h), _sca_by_hand(m, x, h))


def test_sca_cnn_weights_are_distributions_and_h_matters():
    seeded(3)
    m = sca_cnn.SCACNN(6, hidden_size=4, attn_dim=5)
    x, h = rand(2, 6, 3, 5), rand(2, 4, seed=1)
    v = x.flatten(2)
    beta, alpha = m.channel_weights(v, h), m.spatial_weights(v, h)
    assert beta.shape == (2, 6) and alpha.shape == (2, 15)
    torch.testing.assert_close(beta.sum(1), torch.ones(2))
    torch.testing.assert_close(alpha.sum(1), torch.ones(2))
    assert (beta > 0).all() and (alpha > 0).all()
    assert not torch.allclose(m(x, h), m(x, rand(2, 4, seed=9)))
    # rescale: the official code's weights average 1, the paper's 1 / (C * m)
    s = sca_cnn.SCACNN(6, hidden_size=4, attn_dim=5, order="spatial", rescale=False)
    s.load_state_dict({k: val for k, val in m.state_dict().items() if k.split(".")[0] in ("W_s", "W_hs", "W_is")})
    torch.testing.assert_close((s(x, h) / x).sum(dim=(2, 3)), torch.ones(2, 6))


def test_sca_cnn_orders_differ_and_register_in_data_flow_order():
    seeded(4)
    cs = sca_cnn.SCACNN(6, hidden_size=4, attn_dim=5)
    sc = sca_cnn.SCACNN(6, hidden_size=4, attn_dim=5, order="spatial_channel")
    sc.load_state_dict(cs.state_dict())
    x, h = rand(2, 6, 3, 5), rand(2, 4, seed=1)
    assert not torch.allclose(cs(x, h), sc(x, h))
    assert [n.split(".")[0] for n, _ in cs.named_parameters()][0] == "W_c"
    assert [n.split(".")[0] for n, _ in sc.named_parameters()][0] == "W_s"
    with pytest.raises(ValueError):
        sca_cnn.SCACNN(6, order="both")


def test_sca_cnn_param_count_closed_form():
    C, hid, k = 256, 1000, 512
    channel = (k + k) + hid * k + (k + 1)
    spatial = (C * k + k) + hid * k + (k + 1)
    assert param_count(sca_cnn.SCACNN(C)) == channel + spatial


# --------------------------------------------------------------------------- danet


@pytest.mark.parametrize("branches", ["both", "position", "channel"])
@pytest.mark.parametrize("shape", [(1, 8, 5, 7), (2, 16, 3, 4), (1, 8, 1, 6)])
def test_danet_shapes(branches, shape):
    seeded()
    m = danet.DANet(shape[1], branches=branches)
    with torch.no_grad():
        for p in m.parameters():
            if p.numel() == 1:
                p.fill_(0.5)  # gammas off zero so the attention paths carry gradient
    assert forward_backward(m, rand(*shape)).shape == shape


def test_danet_head_train_eval_and_gradcheck():
    seeded()
    m = danet.DANet(32, head=True)
    out = train_and_eval(m, rand(2, 32, 5, 3))
    assert out.shape == (2, 8, 5, 3)
    seeded(1)
    small = danet.DANet(8)
    with torch.no_grad():
        small.pam.gamma.fill_(0.7)
        small.cam.gamma.fill_(-0.4)
    gradcheck(small, rand(2, 8, 3, 5, seed=2))
    seeded(2)
    gradcheck(danet.DANet(16, head=True, reduction=4), rand(2, 16, 3, 4, seed=3))


def test_danet_is_2x_at_initialisation():
    seeded()
    x = rand(2, 8, 3, 5)
    torch.testing.assert_close(danet.DANet(8)(x), 2 * x)
    torch.testing.assert_close(danet.DANet(8, branches="position")(x), x)


def test_danet_matches_paper_equations():
    seeded(5)
    m = danet.DANet(8).double()
    with torch.no_grad():
        m.pam.gamma.fill_(0.7)
        m.cam.gamma.fill_(-0.4)
    x = rand(2, 8, 3, 4, seed=1, dtype=torch.float64)
    B, C, H, W = x.shape
    X = x.reshape(B, C, H * W)
    expected = []
    for b in range(B):
        q = m.pam.query_conv.weight[:, :, 0, 0] @ X[b] + m.pam.query_conv.bias[:, None]
        k = m.pam.key_conv.weight[:, :, 0, 0] @ X[b] + m.pam.key_conv.bias[:, None]
        v = m.pam.value_conv.weight[:, :, 0, 0] @ X[b] + m.pam.value_conv.bias[:, None]
        s = torch.exp(q.T @ k)
        s = s / s.sum(1, keepdim=True)  # s[i, j]: weight of j for i
        e_pam = 0.7 * torch.stack([(v * s[i]).sum(1) for i in range(H * W)], 1) + X[b]
        a = X[b] @ X[b].T
        att = torch.exp(a.max(1, keepdim=True).values - a)  # official: softmax(max - A)
        att = att / att.sum(1, keepdim=True)
        e_cam = -0.4 * att @ X[b] + X[b]
        expected.append(e_pam + e_cam)
    with torch.no_grad():
        torch.testing.assert_close(m(x), torch.stack(expected).reshape(x.shape))


def test_danet_channel_energy_variants():
    x = rand(2, 4, 3, 5, dtype=torch.float64)
    f = x.flatten(2)
    a = f @ f.transpose(1, 2)
    official = danet.ChannelAttention("max_minus").attention(x)
    paper = danet.ChannelAttention("plain").attention(x)
    torch.testing.assert_close(official, torch.softmax(-a, -1))  # row max cancels in softmax
    torch.testing.assert_close(paper, torch.softmax(a, -1))
    torch.testing.assert_close(official.sum(-1), torch.ones(2, 4, dtype=torch.float64))
    assert not torch.allclose(official, paper)
    s = danet.PositionAttention(8).attention(rand(1, 8, 3, 4))
    torch.testing.assert_close(s.sum(-1), torch.ones(1, 12))


def test_danet_param_count_closed_form():
    C = 256
    assert param_count(danet.DANet(C)) == 2 * (C * (C // 8) + C // 8) + (C * C + C) + 2


# --------------------------------------------------------------------------- rga


def _small_rga(c, hw, **kw):
    kw = {"cha_ratio": 2, "spa_ratio": 2, "down_ratio": 2, **kw}
    return rga.RGA(c, hw, **kw)


@pytest.mark.parametrize("mode", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("shape", [(1, 8, 5, 3), (2, 8, 4, 7), (3, 6, 3, 3)])
def test_rga_shapes(mode, shape):
    seeded()
    m = _small_rga(shape[1], shape[2:], use_spatial=mode[0], use_channel=mode[1])
    assert forward_backward(m, rand(*shape)).shape == shape


def test_rga_train_eval_gradcheck_and_size_guard():
    seeded()
    m = _small_rga(8, (5, 3))
    train_and_eval(m, rand(2, 8, 5, 3))
    with pytest.raises(ValueError):
        m(rand(2, 8, 3, 5 + 1))
    with pytest.raises(ValueError):
        rga.RGA(8, (3, 3))  # 9 // 8 spatial relation channels: 1; (1+1) // 8 == 0
    seeded(1)
    gradcheck(_small_rga(4, (3, 3)), rand(2, 4, 3, 3, seed=2))


def test_rga_attention_broadcast_structure():
    seeded(2)
    x = rand(2, 6, 4, 3)
    s = _small_rga(6, (4, 3), use_channel=False).eval()
    ratio = s(x) / x
    assert ((ratio > 0) & (ratio < 1)).all()
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))  # one map for all channels
    c = _small_rga(6, (4, 3), use_spatial=False).eval()
    ratio = c(x) / x
    torch.testing.assert_close(ratio, ratio[:, :, :1, :1].expand_as(ratio))  # one weight per channel


def _cbr(seq, t):
    """1x1 conv (no bias) + BatchNorm (eval) + ReLU, on t[..., cin] (last axis = channels)."""
    conv, bn = seq[0], seq[1]
    y = t @ conv.weight[:, :, 0, 0].T
    y = (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    return torch.relu(y) if len(seq) > 2 else y


def _mlp(seq, t):
    y = _cbr(seq[0:3], t)
    return _cbr(seq[3:5], y)


def test_rga_matches_relation_equations():
    seeded(3)
    m = _small_rga(6, (4, 3)).double().eval()
    randomize_bn(mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d))  # non-trivial statistics
    x = rand(2, 6, 4, 3, seed=1, dtype=torch.float64)
    B, C, H, W = x.shape
    N = H * W
    expected = []
    for b in range(B):
        nodes = x[b].reshape(C, N).T  # N nodes with C features
        th, ph = _cbr(m.theta_spatial, nodes), _cbr(m.phi_spatial, nodes)
        r = th @ ph.T
        a_s = []
        for i in range(N):
            rel = torch.cat((r[i, :], r[:, i]))
            y = torch.cat((_cbr(m.gx_spatial, nodes[i]).mean(0, keepdim=True), _cbr(m.gg_spatial, rel)))
            a_s.append(torch.sigmoid(_mlp(m.W_spatial, y))[0])
        xs = x[b].reshape(C, N) * torch.stack(a_s)[None, :]
        cnodes = xs  # C nodes with N features
        th, ph = _cbr(m.theta_channel, cnodes), _cbr(m.phi_channel, cnodes)
        r = th @ ph.T
        a_c = []
        for i in range(C):
            rel = torch.cat((r[i, :], r[:, i]))
            y = torch.cat((_cbr(m.gx_channel, cnodes[i]).mean(0, keepdim=True), _cbr(m.gg_channel, rel)))
            a_c.append(torch.sigmoid(_mlp(m.W_channel, y))[0])
        expected.append((xs * torch.stack(a_c)[:, None]).reshape(C, H, W))
    with torch.no_grad():
        torch.testing.assert_close(m(x), torch.stack(expected))


# --------------------------------------------------------------------------- scnet


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
@pytest.mark.parametrize("shape", [(1, 8, 9, 10), (2, 8, 5, 7), (3, 4, 4, 4)])
def test_scnet_shapes(upsample, shape):
    seeded()
    m = scnet.SCNet(shape[1], upsample=upsample)
    assert forward_backward(m, rand(*shape)).shape == shape
    s2 = scnet.SCNet(shape[1], stride=2, upsample=upsample)
    out = forward_backward(s2, rand(*shape))
    assert out.shape == (shape[0], shape[1], (shape[2] + 1) // 2, (shape[3] + 1) // 2)


def test_scnet_train_eval_and_gradcheck():
    seeded()
    train_and_eval(scnet.SCNet(8), rand(2, 8, 9, 6))
    train_and_eval(scnet.SCNet(8, norm=False), rand(2, 8, 9, 6))
    with pytest.raises(ValueError):
        scnet.SCNet(7)
    seeded(1)
    gradcheck(scnet.SCNet(4, pooling_r=2), rand(2, 4, 4, 5, seed=2))
    seeded(2)
    gradcheck(scnet.SCNet(4, pooling_r=2, upsample="bilinear", norm=False), rand(2, 4, 4, 5, seed=3))


def _bn_eval(bn, t):
    return (t - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps) * bn.weight[
        :, None, None
    ] + bn.bias[:, None, None]


def test_scnet_matches_paper_equations():
    seeded(3)
    m = scnet.SCNet(6).double().eval()
    randomize_bn(mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d))  # non-trivial statistics
    x = rand(2, 6, 8, 9, seed=1, dtype=torch.float64)
    x1, x2 = x[:, :3], x[:, 3:]

    def k(unit, t, relu=False):
        y = _bn_eval(unit.bn, F.conv2d(t, unit.conv.weight, padding=1))
        return torch.relu(y) if relu else y

    # T1 = 4x4 average pool (8x9 -> 2x2), X1' = nearest upsample of K2 * T1 back to 8x9
    t1 = torch.stack(
        [
            torch.stack([x1[..., 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].mean((-1, -2)) for j in range(2)], -1)
            for i in range(2)
        ],
        -2,
    )
    k2 = k(m.k2, t1)
    rows = torch.div(torch.arange(8) * 2, 8, rounding_mode="floor")
    cols = torch.div(torch.arange(9) * 2, 9, rounding_mode="floor")
    x1p = k2[:, :, rows][:, :, :, cols]
    y1 = k(m.k4, k(m.k3, x1) * torch.sigmoid(x1 + x1p), relu=True)
    y2 = k(m.k1, x2, relu=True)
    with torch.no_grad():
        torch.testing.assert_close(m(x), torch.cat((y1, y2), 1))


def test_scnet_halves_are_separate_paths_and_upsampling_matters():
    seeded(4)
    m = scnet.SCNet(8).eval()
    x = rand(1, 8, 8, 8)
    y = x.clone()
    y[:, :4] += 1.0  # change X1 only
    a, b = m(x), m(y)
    torch.testing.assert_close(a[:, 4:], b[:, 4:])
    assert not torch.allclose(a[:, :4], b[:, :4])
    bil = scnet.SCNet(8, upsample="bilinear").eval()
    bil.load_state_dict(m.state_dict())
    assert not torch.allclose(m(x), bil(x))
    torch.testing.assert_close(m(x)[:, 4:], bil(x)[:, 4:])


def test_scnet_param_count_closed_form():
    h = 128
    assert param_count(scnet.SCNet(256)) == 4 * (h * h * 9 + 2 * h)


# --------------------------------------------------------------------------- strip_pooling


@pytest.mark.parametrize("shape", [(1, 4, 5, 7), (2, 6, 3, 8), (1, 4, 2, 9), (3, 5, 6, 1)])
def test_strip_pooling_shapes(shape):
    seeded()
    assert forward_backward(strip_pooling.StripPooling(shape[1]), rand(*shape)).shape == shape
    paper = strip_pooling.StripPooling(shape[1], norm=False, relu=False)
    assert forward_backward(paper, rand(*shape)).shape == shape


def test_strip_pooling_train_eval_and_gradcheck():
    seeded()
    train_and_eval(strip_pooling.StripPooling(6), rand(2, 6, 5, 7))
    seeded(1)
    gradcheck(strip_pooling.StripPooling(4), rand(2, 4, 3, 5, seed=2))
    seeded(2)
    gradcheck(strip_pooling.StripPooling(4, norm=False, relu=False), rand(2, 4, 3, 5, seed=3))


def test_strip_pooling_matches_paper_equations():
    seeded(3)
    m = strip_pooling.StripPooling(4).double().eval()
    randomize_bn((m.bn1, m.bn2))
    x = rand(2, 4, 5, 6, seed=1, dtype=torch.float64)
    B, C, H, W = x.shape
    yh = x.mean(3)  # [B, C, H]: horizontal strips
    yv = x.mean(2)  # [B, C, W]: vertical strips

    def conv1d(y, weight):  # kernel-3 1-D conv along the last axis, zero padding
        yp = F.pad(y, (1, 1))
        return sum(torch.einsum("oc,bcl->bol", weight[:, :, t], yp[..., t : t + y.shape[-1]]) for t in range(3))

    def bn(mod, t):
        return (t - mod.running_mean[:, None]) / torch.sqrt(mod.running_var[:, None] + mod.eps) * mod.weight[
            :, None
        ] + mod.bias[:, None]

    ah = bn(m.bn1, conv1d(yh, m.conv1.weight[:, :, :, 0]))
    av = bn(m.bn2, conv1d(yv, m.conv2.weight[:, :, 0, :]))
    y = torch.relu(ah[:, :, :, None] + av[:, :, None, :])
    s = torch.sigmoid(torch.einsum("oc,bchw->bohw", m.conv3.weight[:, :, 0, 0], y) + m.conv3.bias[:, None, None])
    with torch.no_grad():
        torch.testing.assert_close(m(x), x * s)
        assert ((m.mask(x) > 0) & (m.mask(x) < 1)).all()


def test_strip_pooling_mask_sees_only_row_and_column_means():
    seeded(4)
    m = strip_pooling.StripPooling(3).eval()
    x = rand(2, 3, 4, 6)
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(2, 3)  # zero row and column sums
    torch.testing.assert_close(m.mask(x), m.mask(x + 0.7 * checker))
    bump = torch.zeros(4, 6)
    bump[1, 2] = 1.0
    assert not torch.allclose(m.mask(x), m.mask(x + bump))


def test_strip_pooling_param_count_closed_form():
    C = 256
    assert param_count(strip_pooling.StripPooling(C)) == 2 * (3 * C * C + 2 * C) + C * C + C


# --------------------------------------------------------------------------- gala


@pytest.mark.parametrize("interaction", ["both", "additive", "multiplicative"])
@pytest.mark.parametrize("shape", [(1, 8, 5, 7), (2, 4, 3, 4), (1, 8, 1, 6)])
def test_gala_shapes(interaction, shape):
    seeded()
    m = gala.GALA(shape[1], interaction=interaction)
    assert forward_backward(m, rand(*shape)).shape == shape
    assert forward_backward(gala.GALA.paper(shape[1], interaction=interaction), rand(*shape)).shape == shape


def test_gala_train_eval_and_gradcheck():
    seeded()
    train_and_eval(gala.GALA(8), rand(2, 8, 5, 3))
    seeded(1)
    gradcheck(gala.GALA(8), rand(2, 8, 3, 5, seed=2))
    seeded(2)
    gradcheck(gala.GALA.paper(8), rand(2, 8, 3, 5, seed=3))


@pytest.mark.parametrize("paper", [False, True])
def test_gala_matches_equations(paper):
    seeded(3)
    m = (gala.GALA.paper(8) if paper else gala.GALA(8)).double()
    x = rand(2, 8, 5, 4, seed=1, dtype=torch.float64)
    gap = x.mean((2, 3))
    g = torch.relu(gap @ m.fc1.weight.T + m.fc1.bias) @ m.fc2.weight.T + m.fc2.bias
    if not paper:
        g = torch.relu(g)  # TF fully_connected's default ReLU
    s = torch.relu(F.conv2d(x, m.conv1.weight, m.conv1.bias))
    if not paper:
        s = torch.relu(F.conv2d(s, m.extra[0].weight, m.extra[0].bias, padding=2))
    s = F.conv2d(s, m.conv2.weight, m.conv2.bias)  # [B, 1, H, W]
    G = g[:, :, None, None]
    z = m.a[:, None, None] * (G + s) + m.m[:, None, None] * (G * s)
    A = torch.tanh(z) if paper else torch.sigmoid(z)
    with torch.no_grad():
        torch.testing.assert_close(m(x), A * x)
    assert len(m.extra) == (0 if paper else 1)


def test_gala_interactions():
    seeded(4)
    both = gala.GALA(8)
    add = gala.GALA(8, interaction="additive")
    mul = gala.GALA(8, interaction="multiplicative")
    add.load_state_dict({k: v for k, v in both.state_dict().items() if k not in ("a", "m")})
    mul.load_state_dict(add.state_dict())
    x = rand(2, 8, 4, 5)
    with torch.no_grad():
        both.a.fill_(1.0)
        both.m.fill_(0.0)
        torch.testing.assert_close(both(x), add(x))
        both.a.fill_(0.0)
        both.m.fill_(1.0)
        torch.testing.assert_close(both(x), mul(x))
    assert not hasattr(add, "a")


def test_gala_param_count_closed_form():
    C, r = 256, 64
    se = (C * r + r) + (r * C + C)
    local = (C * r + r) + (r * r * 25 + r) + (r + 1)
    assert param_count(gala.GALA(C)) == se + local + 2 * C


# --------------------------------------------------------------------------- sta_lstm


@pytest.mark.parametrize("shape", [(1, 4, 5, 3), (2, 7, 5, 3), (3, 1, 5, 3)])
def test_sta_lstm_shapes(shape):
    seeded()
    m = sta_lstm.STALSTM(joints=5, joint_dim=3, hidden_size=6, attn_dim=4)
    B, T = shape[:2]
    assert forward_backward(m, rand(*shape), rand(B, 6, seed=1)).shape == shape
    assert forward_backward(m, rand(*shape), rand(B, T, 6, seed=1)).shape == shape
    assert forward_backward(m, rand(*shape), rand(B, T, 6, seed=1), rand(B, 6, seed=2)).shape == shape


def test_sta_lstm_train_eval_and_gradcheck():
    seeded()
    m = sta_lstm.STALSTM(joints=5, joint_dim=3, hidden_size=6, attn_dim=4)
    with torch.no_grad():
        m.w_x.bias.fill_(1.0)  # keep beta on the linear side of its ReLU
    train_and_eval(m, rand(2, 4, 5, 3), rand(2, 4, 6, seed=1))
    gradcheck(m, rand(2, 3, 5, 3, seed=2), rand(2, 3, 6, seed=3))
    with pytest.raises(ValueError):
        m(rand(2, 3, 4, 3), rand(2, 6))


def test_sta_lstm_matches_paper_equations():
    seeded(3)
    m = sta_lstm.STALSTM(joints=4, joint_dim=3, hidden_size=5, attn_dim=6).double()
    x = rand(2, 3, 4, 3, seed=1, dtype=torch.float64)
    hs, ht = rand(2, 3, 5, seed=2, dtype=torch.float64), rand(2, 3, 5, seed=3, dtype=torch.float64)
    out = torch.empty_like(x)
    for b in range(2):
        for t in range(3):
            xt = x[b, t].reshape(-1)
            s = m.U_s.weight @ torch.tanh(m.W_xs.weight @ xt + m.W_hs.weight @ hs[b, t] + m.W_xs.bias) + m.U_s.bias
            alpha = torch.exp(s) / torch.exp(s).sum()
            beta = torch.relu(m.w_x.weight[0] @ xt + m.w_h.weight[0] @ ht[b, t] + m.w_x.bias[0])
            out[b, t] = beta * alpha[:, None] * x[b, t]
    with torch.no_grad():
        torch.testing.assert_close(m(x, hs, ht), out)


def test_sta_lstm_weights():
    seeded(4)
    m = sta_lstm.STALSTM(joints=5, joint_dim=3, hidden_size=6, attn_dim=4)
    x, h = rand(2, 7, 5, 3), rand(2, 6, seed=1)
    alpha, beta = m.spatial_weights(x, h), m.temporal_weights(x, h)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(2, 7))
    assert (beta >= 0).all() and beta.shape == (2, 7)
    with torch.no_grad():  # one state for all frames == that state repeated per frame
        torch.testing.assert_close(m(x, h), m(x, h[:, None].expand(2, 7, 6)))
        assert not torch.allclose(m(x, h), m(x, h, rand(2, 6, seed=5)))


def test_sta_lstm_param_count_closed_form():
    J, D, H, A = 25, 3, 100, 100
    assert param_count(sta_lstm.STALSTM()) == (J * D * A + A) + H * A + (A * J + J) + (J * D + 1) + H


# --------------------------------------------------------------------------- rstan


@pytest.mark.parametrize("shape", [(1, 6, 3, 4, 5), (2, 6, 1, 3, 3), (3, 4, 5, 1, 7)])
def test_rstan_shapes(shape):
    seeded()
    m = rstan.RSTAN(shape[1], hidden_size=5, attn_dim=4)
    assert forward_backward(m, rand(*shape), rand(shape[0], 5, seed=1)).shape == shape[:2]


def test_rstan_train_eval_and_gradcheck():
    seeded()
    m = rstan.RSTAN(6, hidden_size=5, attn_dim=4)
    train_and_eval(m, rand(2, 6, 3, 4, 5), rand(2, 5, seed=1))
    gradcheck(m, rand(2, 6, 3, 2, 3, seed=2), rand(2, 5, seed=3))
    with pytest.raises(ValueError):
        m(rand(2, 5, 3, 4, 5), rand(2, 5))


def test_rstan_matches_paper_equations():
    seeded(3)
    m = rstan.RSTAN(4, hidden_size=5, attn_dim=6).double()
    x = rand(2, 4, 3, 2, 3, seed=1, dtype=torch.float64)
    h = rand(2, 5, seed=2, dtype=torch.float64)
    expected = []
    for b in range(2):
        X = x[b].reshape(4, 3, 6)  # X[:, n, k]
        frames = []
        for n in range(3):
            a = torch.stack(
                [
                    m.w_s.weight[0] @ torch.tanh(m.W_hs.weight @ h[b] + m.W_xs.weight @ X[:, n, k] + m.W_xs.bias)
                    for k in range(6)
                ]
            )
            alpha = torch.exp(a) / torch.exp(a).sum()
            frames.append(sum(alpha[k] * X[:, n, k] for k in range(6)))
        bs = torch.stack(
            [m.w_t.weight[0] @ torch.tanh(m.W_ht.weight @ h[b] + m.W_it.weight @ I + m.W_it.bias) for I in frames]
        )
        beta = torch.exp(bs) / torch.exp(bs).sum()
        expected.append(sum(beta[n] * frames[n] for n in range(3)))
    with torch.no_grad():
        torch.testing.assert_close(m(x, h), torch.stack(expected))


def test_rstan_convexity_and_permutation_invariance():
    seeded(4)
    m = rstan.RSTAN(4, hidden_size=5, attn_dim=6)
    x, h = rand(2, 4, 3, 2, 3), rand(2, 5, seed=1)
    alpha = m.spatial_weights(x, h)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(2, 3))
    beta = m.temporal_weights(m.frame_features(x, h), h)
    torch.testing.assert_close(beta.sum(-1), torch.ones(2))
    with torch.no_grad():
        out = m(x, h)
        torch.testing.assert_close(m(x[:, :, [2, 0, 1]], h), out)  # frames are a set
        torch.testing.assert_close(m(x.flip(-1).flip(-2), h), out)  # so are the locations
        const = torch.randn(2, 4)[:, :, None, None, None].expand(2, 4, 3, 2, 3)
        torch.testing.assert_close(m(const, h), const[:, :, 0, 0, 0])  # convex combination
        lo, hi = x.flatten(2).min(-1).values, x.flatten(2).max(-1).values
        assert ((out >= lo - 1e-6) & (out <= hi + 1e-6)).all()
        assert not torch.allclose(out, m(x, rand(2, 5, seed=7)))


# --------------------------------------------------------------------------- sta


@pytest.mark.parametrize("shape", [(1, 3, 4, 8, 6), (2, 5, 3, 7, 3), (2, 1, 4, 4, 5), (1, 4, 2, 5, 2)])
def test_sta_shapes(shape):
    B, T, C, H, W = shape
    out = forward_backward(sta.STA(C), rand(*shape))
    assert out.shape == (B, 2 * C, H, W)


def test_sta_train_eval_and_gradcheck():
    train_and_eval(sta.STA(), rand(2, 3, 4, 8, 6))
    gradcheck(sta.STA(4), rand(2, 3, 4, 5, 3, seed=1))
    gradcheck(sta.STA(4, squared=False), rand(2, 3, 4, 5, 3, seed=2))
    with pytest.raises(ValueError):
        sta.STA(5)(rand(2, 3, 4, 5, 3))


def test_sta_matches_paper_equations():
    x = rand(2, 3, 4, 7, 3, seed=3, dtype=torch.float64)  # H = 7: blocks of 2, 2, 2, 1 rows
    B, T, C, H, W = x.shape
    rows = [range(0, 2), range(2, 4), range(4, 6), range(6, 7)]
    out = torch.empty(B, 2 * C, H, W, dtype=x.dtype)
    for b in range(B):
        s = torch.zeros(T, 4, dtype=x.dtype)
        for n in range(T):
            e = torch.tensor(
                [[float((x[b, n, :, i, j] ** 2).sum()) for j in range(W)] for i in range(H)], dtype=x.dtype
            )
            g = e / e.sum()
            for k, rr in enumerate(rows):
                s[n, k] = sum(g[i, j] for i in rr for j in range(W))
        S = s / s.sum(0, keepdim=True)
        for k, rr in enumerate(rows):
            best = int(S[:, k].argmax())
            for i in rr:
                out[b, :C, i] = x[b, best, :, i]
                out[b, C:, i] = sum(S[n, k] * x[b, n, :, i] for n in range(T))
    m = sta.STA(4)
    torch.testing.assert_close(m(x), out)
    torch.testing.assert_close(m.scores(x).sum(1), torch.ones(2, 4, dtype=x.dtype))


def test_sta_identities():
    m = sta.STA()
    x = rand(2, 4, 3, 8, 5)
    out = m(x)
    torch.testing.assert_close(m(x[:, [3, 1, 0, 2]]), out)  # clip order does not matter
    one = rand(2, 1, 3, 8, 5)
    torch.testing.assert_close(m(one), torch.cat((one[:, 0], one[:, 0]), 1))  # a single frame is itself twice
    same = one.expand(2, 4, 3, 8, 5)
    torch.testing.assert_close(m(same), torch.cat((one[:, 0], one[:, 0]), 1))
    assert not torch.allclose(out, sta.STA(squared=False)(x))
    assert not torch.allclose(out, sta.STA(parts=2)(x))
    assert param_count(m) == 0


# --------------------------------------------------------------------------- stgcn


@pytest.mark.parametrize("shape", [(1, 3, 4, 8, 5), (2, 2, 6, 7, 3), (2, 1, 4, 4, 1)])
def test_stgcn_shapes(shape):
    seeded()
    B, T, C, H, W = shape
    assert forward_backward(stgcn.STGCN(C), rand(*shape)).shape == (B, 2 * C)
    nodes = forward_backward(stgcn.STGCN(C, pool=False, self_loops=False), rand(*shape))
    assert nodes.shape == (B, T, 4, 2 * C)


def test_stgcn_train_eval_and_gradcheck():
    seeded()
    train_and_eval(stgcn.STGCN(6), rand(2, 3, 6, 8, 5))
    seeded(1)
    gradcheck(stgcn.STGCN(4, num_layers=2), rand(2, 2, 4, 4, 3, seed=2))
    seeded(2)
    gradcheck(stgcn.STGCN(4, self_loops=False, pool=False), rand(2, 2, 4, 5, 3, seed=3))


def test_stgcn_matches_graph_equations():
    seeded(3)
    m = stgcn.STGCN(3, parts=2, num_layers=2).double()
    x = rand(1, 2, 3, 4, 2, seed=1, dtype=torch.float64)
    # nodes: the mean of each horizontal half of each frame, frame-major
    nodes = torch.stack([x[0, t, :, 2 * p : 2 * p + 2].mean((1, 2)) for t in range(2) for p in range(2)])

    def branch(br, v):
        n = v.shape[0]
        phi = v @ br.phi.weight.T
        e = torch.tensor([[float(phi[i] @ phi[j]) ** 2 for j in range(n)] for i in range(n)], dtype=v.dtype)
        a = e / e.sum(1, keepdim=True)
        ah = (a + torch.eye(n, dtype=v.dtype)) / 2  # D^-1/2 (A + I) D^-1/2 with D = 2 I
        h = torch.relu(ah @ v @ br.W[0].weight.T)
        return ah @ h @ br.W[1].weight.T

    with torch.no_grad():
        f_t = branch(m.temporal, nodes).max(0).values
        f_s = torch.stack([branch(m.structural, nodes[2 * t : 2 * t + 2]).max(0).values for t in range(2)]).mean(0)
        torch.testing.assert_close(m(x)[0], torch.cat((f_t, f_s)))


def test_stgcn_identities():
    seeded(4)
    m = stgcn.STGCN(5, parts=3)
    x = rand(2, 4, 5, 9, 4)
    nodes = m.patches(x).reshape(2, 12, 5)
    plain = stgcn.GraphBranch(5, 1, self_loops=False)
    plain.phi.load_state_dict(m.temporal.phi.state_dict())
    a = plain.adjacency(nodes)
    torch.testing.assert_close(a.sum(-1), torch.ones(2, 12))  # rows normalised
    assert (a >= 0).all()
    # symmetric renormalisation of A + I with unit row sums is (A + I) / 2
    torch.testing.assert_close(m.temporal.adjacency(nodes), (a + torch.eye(12)) / 2)
    with torch.no_grad():
        torch.testing.assert_close(m(x[:, [2, 0, 3, 1]]), m(x))  # frame order does not matter
        m.structural.load_state_dict(m.temporal.state_dict())
        single = m(x[:, :1])
        torch.testing.assert_close(single[:, :5], single[:, 5:])  # one frame: both graphs coincide
        other = stgcn.STGCN(5, parts=3, self_loops=False)
        other.load_state_dict(m.state_dict())
        assert not torch.allclose(other(x), m(x))


def test_stgcn_param_count_closed_form():
    assert param_count(stgcn.STGCN(256)) == 2 * (1 + 2) * 256 * 256
