"""Reference tests for group cs_a: cbam, tam, sknet, residual_attention, bam, scse,
triplet_attention, simam, coordinate_attention, dynamic_conv, gltr.

Every mechanism gets: forward/backward at several shapes (batch 1, odd and non-square
sizes), train and eval mode, a tiny float64 gradcheck, and identities written from the
paper (closed forms recomputed by hand with functional ops, structural properties).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.reference import (
    bam,
    cbam,
    coordinate_attention,
    dynamic_conv,
    gltr,
    residual_attention,
    scse,
    simam,
    sknet,
    tam,
    triplet_attention,
)
from tests.reference.harness import forward_backward, gradcheck, param_count, train_and_eval


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _randomise_bn(module: torch.nn.Module, seed: int = 1) -> None:
    """Give every BN non-trivial running stats and affine params, so eval-mode checks see them."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)


def _bn_eval(x: torch.Tensor, bn: torch.nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Eval-mode batch norm along dim 1, written out."""
    shape = [1, -1] + [1] * (x.dim() - 2)
    inv = (bn.running_var + bn.eps).rsqrt()
    return (x - bn.running_mean.view(shape)) * (inv * bn.weight).view(shape) + bn.bias.view(shape)


# --------------------------------------------------------------------------- cbam


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(pool_types=("avg", "max", "lp", "lse")),
        dict(no_spatial=True),
        dict(spatial_bn=False),
        dict(pool_types=("avg",)),
    ],
)
def test_cbam_variants(kwargs):
    torch.manual_seed(0)
    m = cbam.CBAM(8, reduction=2, **kwargs)
    x = _randn(2, 8, 5, 6)
    assert train_and_eval(m, x).shape == x.shape


def test_cbam_gradcheck():
    torch.manual_seed(0)
    m = cbam.CBAM(8, reduction=2, pool_types=("avg", "max", "lp", "lse"))
    gradcheck(m, _randn(2, 8, 3, 5, dtype=torch.float64))


def test_cbam_matches_hand_computation():
    """Channel gate then spatial gate, with the official (max, mean) order and BN, by hand."""
    torch.manual_seed(0)
    m = cbam.CBAM(12, reduction=3).eval()
    _randomise_bn(m)
    x = _randn(2, 12, 5, 7)

    def mlp(v):
        return F.linear(F.relu(F.linear(v, m.fc1.weight, m.fc1.bias)), m.fc2.weight, m.fc2.bias)

    s_c = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))
    x1 = x * s_c[:, :, None, None]
    maps = torch.stack([x1.max(dim=1).values, x1.mean(dim=1)], dim=1)
    s_s = torch.sigmoid(_bn_eval(F.conv2d(maps, m.conv.weight, padding=3), m.bn))
    with torch.no_grad():
        torch.testing.assert_close(m(x), x1 * s_s)
    # the 2-channel order matters: swapping the conv's input channels changes the result
    with torch.no_grad():
        m.conv.weight.copy_(m.conv.weight.flip(1))
        assert not torch.allclose(m(x), x1 * s_s)


def test_cbam_attention_is_separable():
    """y / x = s_c[c] * s_s[h, w]: for each sample the ratio has rank one (channel x space)."""
    torch.manual_seed(0)
    m = cbam.CBAM(8, reduction=2).eval()
    x = _randn(2, 8, 4, 6).abs() + 0.5
    with torch.no_grad():
        ratio = (m(x) / x).flatten(2)  # [B, C, HW]
    for b in range(2):
        sv = torch.linalg.svdvals(ratio[b])
        assert sv[1] < 1e-5 * sv[0]


def test_cbam_pool_types_change_output():
    torch.manual_seed(0)
    a = cbam.CBAM(8, reduction=2, pool_types=("avg", "max")).eval()
    b = cbam.CBAM(8, reduction=2, pool_types=("avg",)).eval()
    b.load_state_dict(a.state_dict())
    x = _randn(2, 8, 5, 5)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))


def test_cbam_param_count_default():
    # shared MLP 256->16->256 with biases, 7x7 conv 2->1 without bias, BN(1)
    assert param_count(cbam.CBAM(256)) == (256 * 16 + 16) + (16 * 256 + 256) + 2 * 49 + 2


# --------------------------------------------------------------------------- tam


def test_tam_other_kernel_size_and_frames():
    torch.manual_seed(0)
    m = tam.TemporalAdaptiveModule(8, frames=6, kernel_size=5, padding=2)
    x = _randn(2, 8, 6, 3, 4)
    assert train_and_eval(m, x).shape == x.shape
    with pytest.raises(ValueError):
        m(_randn(2, 8, 5, 3, 4))


def test_tam_gradcheck():
    torch.manual_seed(0)
    m = tam.TemporalAdaptiveModule(8, frames=4)
    gradcheck(m, _randn(2, 8, 4, 3, 5, dtype=torch.float64))


def test_tam_matches_hand_computation():
    torch.manual_seed(0)
    m = tam.TemporalAdaptiveModule(8, frames=5).eval()
    _randomise_bn(m)
    x = _randn(2, 8, 5, 3, 4)
    g = x.mean(dim=(3, 4))  # [B, C, T]
    h = F.relu(_bn_eval(F.conv1d(g, m.local_conv1.weight, padding=1), m.local_bn))
    s = torch.sigmoid(F.conv1d(h, m.local_conv2.weight))
    x1 = x * s[..., None, None]
    z = F.relu(_bn_eval(g.reshape(16, 5) @ m.global_fc1.weight.T, m.global_bn))
    theta = torch.softmax(z @ m.global_fc2.weight.T, dim=-1).view(2, 8, 3)
    torch.testing.assert_close(theta.sum(-1), torch.ones(2, 8))
    padded = F.pad(x1, (0, 0, 0, 0, 1, 1))  # zero-pad T by one frame each side
    expected = sum(theta[:, :, k, None, None, None] * padded[:, :, k : k + 5] for k in range(3))
    with torch.no_grad():
        torch.testing.assert_close(m(x), expected)


def test_tam_zeroed_branches_give_closed_form():
    """Zero last layers: s = 1/2 and Theta uniform, so y = (x[t-1] + x[t] + x[t+1]) / 6."""
    torch.manual_seed(0)
    m = tam.TemporalAdaptiveModule(8, frames=4)
    with torch.no_grad():
        m.local_conv2.weight.zero_()
        m.global_fc2.weight.zero_()
    x = _randn(2, 8, 4, 3, 3)
    p = F.pad(x, (0, 0, 0, 0, 1, 1))
    with torch.no_grad():
        torch.testing.assert_close(m(x), (p[:, :, :-2] + p[:, :, 1:-1] + p[:, :, 2:]) / 6)


def test_tam_param_count_default():
    # local: conv1d 256->64 (k=3), BN(64), conv1d 64->256; global: 8->16, BN(16), 16->3
    expected = 256 * 64 * 3 + 2 * 64 + 64 * 256 + 8 * 16 + 2 * 16 + 16 * 3
    assert param_count(tam.TemporalAdaptiveModule(256, frames=8)) == expected


# --------------------------------------------------------------------------- sknet


def test_sknet_batch_one_eval_and_variants():
    torch.manual_seed(0)
    m = sknet.SelectiveKernel(8, groups=4, reduction=2, min_dim=4).eval()
    with torch.no_grad():
        assert m(_randn(1, 8, 5, 3)).shape == (1, 8, 5, 3)
    m3 = sknet.SelectiveKernel(8, branches=3, groups=2, min_dim=4)
    assert train_and_eval(m3, _randn(2, 8, 6, 5)).shape == (2, 8, 6, 5)
    ms = sknet.SelectiveKernel(8, groups=4, min_dim=4, stride=2)
    assert train_and_eval(ms, _randn(2, 8, 7, 5)).shape == (2, 8, 4, 3)
    with pytest.raises(ValueError):
        sknet.SelectiveKernel(12, groups=32)


def test_sknet_gradcheck():
    torch.manual_seed(0)
    m = sknet.SelectiveKernel(8, groups=4, reduction=2, min_dim=4)
    gradcheck(m, _randn(2, 8, 3, 5, dtype=torch.float64))


def test_sknet_matches_hand_computation():
    torch.manual_seed(0)
    m = sknet.SelectiveKernel(8, groups=4, reduction=2, min_dim=4).eval()
    _randomise_bn(m)
    x = _randn(2, 8, 6, 5)
    b0, b1 = m.branches
    u0 = F.relu(_bn_eval(F.conv2d(x, b0.conv.weight, padding=1, groups=4), b0.bn))
    u1 = F.relu(_bn_eval(F.conv2d(x, b1.conv.weight, padding=2, dilation=2, groups=4), b1.bn))
    s = (u0 + u1).mean(dim=(2, 3))
    z = F.relu(_bn_eval(s @ m.fc.weight.T, m.bn))
    A, B = m.select.weight[:8], m.select.weight[8:]  # branch-major layout
    ea, eb = torch.exp(z @ A.T), torch.exp(z @ B.T)
    a, b = ea / (ea + eb), eb / (ea + eb)
    with torch.no_grad():
        torch.testing.assert_close(m(x), a[:, :, None, None] * u0 + b[:, :, None, None] * u1)


def test_sknet_selection_is_convex_combination():
    """Softmax over branches: weights sum to one, and equal branches make V equal U."""
    torch.manual_seed(0)
    m = sknet.SelectiveKernel(8, branches=3, groups=4, min_dim=4).eval()
    _randomise_bn(m)
    x = _randn(2, 8, 5, 4)
    with torch.no_grad():
        a = m.selection(m.branch_outputs(x))
        torch.testing.assert_close(a.sum(dim=1), torch.ones(2, 8))
        # a 1x1 centre tap is the same for every dilation: with equal branches, V = U_0
        centre = torch.zeros_like(m.branches[0].conv.weight)
        centre[:, :, 1, 1] = m.branches[0].conv.weight[:, :, 1, 1] + 1.0
        bn_state = m.branches[0].bn.state_dict()
        for branch in m.branches:
            branch.conv.weight.copy_(centre)
            branch.bn.load_state_dict(bn_state)
        torch.testing.assert_close(m(x), m.branches[0](x))


def test_sknet_param_count_default():
    # two grouped 3x3 convs (256 x 8 x 9 each) + 2 BN(256), fc 256->32, BN(32), select 32->512
    expected = 2 * (256 * 8 * 9 + 2 * 256) + 256 * 32 + 2 * 32 + 32 * 512
    assert param_count(sknet.SelectiveKernel(256)) == expected


# --------------------------------------------------------------------------- residual_attention


def _zero_residual_branches(m):
    """Zero the last conv of every bottleneck unit, making each unit the identity."""
    with torch.no_grad():
        for unit in m.modules():
            if isinstance(unit, residual_attention.PreActBottleneck):
                unit.conv3.weight.zero_()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(levels=1),
        dict(levels=2, r=2),
        dict(activation="channel"),
        dict(activation="spatial"),
        dict(attention_residual=False),
        dict(p=2, t=1),
    ],
)
def test_residual_attention_variants(kwargs):
    torch.manual_seed(0)
    m = residual_attention.ResidualAttention(8, **kwargs)
    x = _randn(2, 8, 6, 7)
    assert train_and_eval(m, x).shape == x.shape


def test_residual_attention_gradcheck():
    torch.manual_seed(0)
    m = residual_attention.ResidualAttention(8, levels=2)
    _randomise_bn(m)
    gradcheck(m, _randn(2, 8, 3, 5, dtype=torch.float64))


def test_residual_attention_identity_units_give_closed_form():
    """Identity residual units and a zero last mask conv: M = 1/2, so y = (1 + 1/2) x (ARL)
    and y = x / 2 (NAL)."""
    torch.manual_seed(0)
    x = _randn(2, 8, 6, 5)
    for arl, scale in ((True, 1.5), (False, 0.5)):
        m = residual_attention.ResidualAttention(8, attention_residual=arl)
        _zero_residual_branches(m)
        with torch.no_grad():
            m.mask_conv2.weight.zero_()
        torch.testing.assert_close(m(x), scale * x)


def test_residual_attention_matches_hand_computation():
    """levels=1: mask = conv(relu(bn(conv(relu(bn(interp(units(maxpool(f))))))))), y = post((1+M) T)."""
    torch.manual_seed(0)
    m = residual_attention.ResidualAttention(8, levels=1).eval()
    _randomise_bn(m)
    x = _randn(2, 8, 7, 6)

    def unit(u, h):
        h1 = F.conv2d(F.relu(_bn_eval(h, u.bn1)), u.conv1.weight)
        h2 = F.conv2d(F.relu(_bn_eval(h1, u.bn2)), u.conv2.weight, padding=1)
        return h + F.conv2d(F.relu(_bn_eval(h2, u.bn3)), u.conv3.weight)

    f = unit(m.pre[0], x)
    trunk = unit(m.trunk[1], unit(m.trunk[0], f))
    d = F.max_pool2d(f, 3, 2, 1)
    assert d.shape[-2:] == (4, 3)
    d = unit(m.down[0][1], unit(m.down[0][0], d))  # deepest level: 2r = 2 units
    up = F.interpolate(d, size=(7, 6), mode="bilinear", align_corners=True)
    z = F.conv2d(F.relu(_bn_eval(up, m.mask_bn1)), m.mask_conv1.weight)
    z = F.conv2d(F.relu(_bn_eval(z, m.mask_bn2)), m.mask_conv2.weight)
    expected = unit(m.post[0], (1 + torch.sigmoid(z)) * trunk)
    with torch.no_grad():
        torch.testing.assert_close(m(x), expected)


def test_residual_attention_mask_activations():
    """f2 (channel): unit L2 norm over channels at every position; f3 (spatial): the
    pre-sigmoid map is standardised over positions for every channel."""
    torch.manual_seed(0)
    x = _randn(2, 8, 6, 5)
    mc = residual_attention.ResidualAttention(8, levels=2, activation="channel").eval()
    ms = residual_attention.ResidualAttention(8, levels=2, activation="spatial").eval()
    ms.load_state_dict(mc.state_dict())
    with torch.no_grad():
        f = mc.pre(x)
        torch.testing.assert_close(mc.soft_mask(f).norm(dim=1), torch.ones(2, 6, 5))
        z = torch.logit(ms.soft_mask(f).double())
        torch.testing.assert_close(z.mean(dim=(2, 3)), torch.zeros(2, 8, dtype=torch.double), atol=1e-4, rtol=0)
        torch.testing.assert_close(
            z.var(dim=(2, 3), unbiased=False), torch.ones(2, 8, dtype=torch.double), atol=1e-2, rtol=0
        )


def test_residual_attention_levels_change_structure():
    counts = [param_count(residual_attention.ResidualAttention(16, levels=k)) for k in (1, 2, 3)]
    unit = param_count(residual_attention.PreActBottleneck(16))
    # each extra level adds a down unit, a skip unit and an up unit (r=1)
    assert counts[1] - counts[0] == 3 * unit and counts[2] - counts[1] == 3 * unit


def test_residual_attention_param_count_default():
    unit = 2 * 256 + 256 * 64 + 2 * 64 + 64 * 64 * 9 + 2 * 64 + 64 * 256
    assert unit == param_count(residual_attention.PreActBottleneck(256))
    # pre 1 + trunk 2 + post 1 + down (1 + 1 + 2) + skip 2 + up 2 = 12 units, mask head 2 x (BN + 1x1)
    expected = 12 * unit + 2 * (2 * 256 + 256 * 256)
    assert param_count(residual_attention.ResidualAttention(256)) == expected


# --------------------------------------------------------------------------- bam


def test_bam_batch_one_eval_and_variants():
    torch.manual_seed(0)
    m = bam.BAM(16, reduction=4).eval()
    with torch.no_grad():
        assert m(_randn(1, 16, 5, 3)).shape == (1, 16, 5, 3)
    for kwargs in (dict(fusion="product"), dict(num_layers=2), dict(dilation=2, num_dilated=3)):
        mv = bam.BAM(16, reduction=4, **kwargs)
        assert train_and_eval(mv, _randn(2, 16, 6, 5)).shape == (2, 16, 6, 5)
    with pytest.raises(ValueError):
        bam.BAM(16, fusion="max")


def test_bam_gradcheck():
    torch.manual_seed(0)
    m = bam.BAM(8, reduction=2, dilation=2)
    _randomise_bn(m)
    gradcheck(m, _randn(2, 8, 3, 5, dtype=torch.float64))


@pytest.mark.parametrize("fusion", ["sum", "product"])
def test_bam_matches_hand_computation(fusion):
    torch.manual_seed(0)
    m = bam.BAM(16, reduction=4, fusion=fusion).eval()
    _randomise_bn(m)
    x = _randn(2, 16, 6, 9)
    h = F.relu(_bn_eval(F.linear(x.mean(dim=(2, 3)), m.fc[0].weight, m.fc[0].bias), m.bn_c[0]))
    mc = F.linear(h, m.fc_final.weight, m.fc_final.bias)[:, :, None, None]
    s = F.relu(_bn_eval(F.conv2d(x, m.reduce.weight, m.reduce.bias), m.bn_reduce))
    for conv, bn in zip(m.dilated, m.bn_dilated):
        s = F.relu(_bn_eval(F.conv2d(s, conv.weight, conv.bias, padding=4, dilation=4), bn))
    ms = F.conv2d(s, m.final.weight, m.final.bias)
    att = torch.sigmoid(mc + ms) if fusion == "sum" else torch.sigmoid(mc * ms)
    with torch.no_grad():
        torch.testing.assert_close(m(x), x + x * att)


def test_bam_zero_heads_give_closed_form():
    """Both branch outputs zero: M = sigmoid(0) = 1/2 and y = 1.5 x (any fusion)."""
    torch.manual_seed(0)
    x = _randn(2, 8, 5, 4)
    for fusion in ("sum", "product"):
        m = bam.BAM(8, reduction=2, fusion=fusion)
        with torch.no_grad():
            for layer in (m.fc_final, m.final):
                layer.weight.zero_()
                layer.bias.zero_()
        torch.testing.assert_close(m(x), 1.5 * x)


def test_bam_param_count_default():
    channel = (256 * 16 + 16) + 2 * 16 + (16 * 256 + 256)
    spatial = (256 * 16 + 16) + 2 * 16 + 2 * (16 * 16 * 9 + 16 + 2 * 16) + (16 + 1)
    assert param_count(bam.BAM(256)) == channel + spatial


# --------------------------------------------------------------------------- scse


@pytest.mark.parametrize("fusion", ["max", "add", "mul"])
def test_scse_matches_hand_computation(fusion):
    torch.manual_seed(0)
    m = scse.SCSE(8, fusion=fusion)
    x = _randn(2, 8, 5, 7)
    s = torch.sigmoid(
        F.linear(F.relu(F.linear(x.mean(dim=(2, 3)), m.fc1.weight, m.fc1.bias)), m.fc2.weight, m.fc2.bias)
    )
    cse = x * s[:, :, None, None]
    q = torch.sigmoid(F.conv2d(x, m.conv.weight.view(1, 8, 1, 1), m.conv.bias))
    sse = x * q
    expected = {"max": torch.maximum(cse, sse), "add": cse + sse, "mul": cse * sse}[fusion]
    with torch.no_grad():
        torch.testing.assert_close(m(x), expected)


def test_scse_rank_independent_parameters():
    """The same parameters give the same result on a 3-D map as on the 2-D map it stacks."""
    torch.manual_seed(0)
    m = scse.SCSE(8, fusion="add")
    x2 = _randn(2, 8, 4, 6)
    x3 = torch.stack([x2, x2], dim=2)  # [B, C, 2, H, W] with identical slices
    with torch.no_grad():
        torch.testing.assert_close(m(x3)[:, :, 0], m(x2))


def test_scse_gradcheck():
    torch.manual_seed(0)
    gradcheck(scse.SCSE(8), _randn(2, 8, 3, 5, dtype=torch.float64))
    gradcheck(scse.SCSE(6, fusion="add"), _randn(2, 6, 7, dtype=torch.float64))


def test_scse_param_count_default():
    assert param_count(scse.SCSE(256)) == (256 * 128 + 128) + (128 * 256 + 256) + (256 + 1)


# --------------------------------------------------------------------------- triplet_attention


def test_triplet_gradcheck():
    torch.manual_seed(0)
    m = triplet_attention.TripletAttention(4, kernel_size=3)
    _randomise_bn(m)
    gradcheck(m, _randn(2, 4, 3, 5, dtype=torch.float64))


@pytest.mark.parametrize("no_spatial", [False, True])
def test_triplet_matches_hand_computation(no_spatial):
    """Each branch pools one axis and convolves the other two, in the official axis order:
    cw: plane (C, W); hc: plane (H, C); hw: plane (H, W)."""
    torch.manual_seed(0)
    m = triplet_attention.TripletAttention(6, no_spatial=no_spatial).eval()
    _randomise_bn(m)
    x = _randn(2, 6, 5, 8)

    def gate(maps, g):  # maps [B, 2, P, Q]
        return torch.sigmoid(_bn_eval(F.conv2d(maps, g.conv.weight, padding=3), g.bn))[:, 0]

    a_cw = gate(torch.stack([x.amax(dim=2), x.mean(dim=2)], dim=1), m.cw)  # [B, C, W]
    a_hc = gate(torch.stack([x.amax(dim=3), x.mean(dim=3)], dim=1).transpose(2, 3), m.hc)  # [B, H, C]
    y = x * a_cw[:, :, None, :] + x * a_hc.transpose(1, 2)[:, :, :, None]
    if no_spatial:
        expected = y / 2
    else:
        a_hw = gate(torch.stack([x.amax(dim=1), x.mean(dim=1)], dim=1), m.hw)  # [B, H, W]
        expected = (y + x * a_hw[:, None]) / 3
    with torch.no_grad():
        torch.testing.assert_close(m(x), expected)


def test_triplet_branch_axis_orientation_matters():
    """A 90-degree rotation differs from the official permutation by a flip of one axis of the
    pooled map; flipping the cw kernel accordingly changes the output."""
    torch.manual_seed(0)
    m = triplet_attention.TripletAttention(6).eval()
    x = _randn(2, 6, 5, 6)
    with torch.no_grad():
        before = m(x)
        m.cw.conv.weight.copy_(m.cw.conv.weight.flip(3).clone())
        assert not torch.allclose(before, m(x))


def test_triplet_param_count_default():
    assert param_count(triplet_attention.TripletAttention(256)) == 3 * (2 * 49 + 2)


# --------------------------------------------------------------------------- simam


def test_simam_gradcheck():
    gradcheck(simam.SimAM(), _randn(2, 4, 3, 5, dtype=torch.float64))
    gradcheck(simam.SimAM(unbiased=False), _randn(2, 4, 6, dtype=torch.float64))


@pytest.mark.parametrize("unbiased", [True, False])
def test_simam_matches_minimal_energy(unbiased):
    """y = x * sigmoid(1 / e*), e* = 4(s2 + l) / ((t - mu)^2 + 2 s2 + 2 l), neuron by neuron."""
    lam = 0.05
    m = simam.SimAM(e_lambda=lam, unbiased=unbiased)
    x = _randn(2, 3, 4, 5, dtype=torch.float64)
    expected = torch.empty_like(x)
    n = 20
    for b in range(2):
        for c in range(3):
            vals = x[b, c].flatten().tolist()
            mu = sum(vals) / n
            s2 = sum((v - mu) ** 2 for v in vals) / (n - 1 if unbiased else n)
            for i in range(4):
                for j in range(5):
                    t = x[b, c, i, j].item()
                    e = 4 * (s2 + lam) / ((t - mu) ** 2 + 2 * s2 + 2 * lam)
                    expected[b, c, i, j] = t / (1 + math.exp(-1 / e))
    torch.testing.assert_close(m(x), expected)


def test_simam_properties():
    """Shift-invariant weights, 1/E >= 1/2 with equality at the mean, larger for neurons farther
    from the mean, and the divisor choice matters."""
    m = simam.SimAM()
    x = _randn(2, 3, 4, 6)
    shift = _randn(2, 3, 1, 1, seed=5) * 3
    torch.testing.assert_close(m(x + shift), (x + shift) * torch.sigmoid(m.inverse_energy(x)), rtol=1e-4, atol=1e-5)
    inv = m.inverse_energy(x)
    assert (inv >= 0.5).all()
    dist = (x - x.mean(dim=(2, 3), keepdim=True)).abs().flatten(2)
    assert torch.equal(inv.flatten(2).argmax(-1), dist.argmax(-1))
    const = torch.full((1, 2, 3, 3), 2.0)
    torch.testing.assert_close(m(const), const * torch.sigmoid(torch.tensor(0.5)))
    assert not torch.allclose(m(x), simam.SimAM(unbiased=False)(x))
    assert param_count(m) == 0


# --------------------------------------------------------------------------- coordinate_attention


@pytest.mark.parametrize("shape", [(2, 16, 7, 5), (1, 16, 3, 9), (2, 16, 1, 6)])
def test_coordinate_attention_forward_backward(shape):
    torch.manual_seed(0)
    m = coordinate_attention.CoordinateAttention(16)
    x = _randn(*shape)
    out = forward_backward(m, x)
    assert out.shape == x.shape
    train_and_eval(m, x)
    mr = coordinate_attention.CoordinateAttention(16, reduction=4, activation="relu")
    assert train_and_eval(mr, x).shape == x.shape


def test_coordinate_attention_gradcheck():
    torch.manual_seed(0)
    m = coordinate_attention.CoordinateAttention(8, min_hidden=4)
    _randomise_bn(m)
    gradcheck(m, _randn(2, 8, 3, 5, dtype=torch.float64))


def test_coordinate_attention_matches_hand_computation():
    torch.manual_seed(0)
    m = coordinate_attention.CoordinateAttention(16).eval()
    _randomise_bn(m)
    x = _randn(2, 16, 5, 7)
    pooled = torch.cat([x.mean(dim=3), x.mean(dim=2)], dim=2)  # [B, C, H + W]
    f = F.conv1d(pooled, m.conv1.weight[..., 0], m.conv1.bias)
    f = _bn_eval(f, m.bn1)
    f = f * torch.clamp(f + 3, 0, 6) / 6  # h-swish
    a_h = torch.sigmoid(F.conv1d(f[:, :, :5], m.conv_h.weight[..., 0], m.conv_h.bias))  # [B, C, H]
    a_w = torch.sigmoid(F.conv1d(f[:, :, 5:], m.conv_w.weight[..., 0], m.conv_w.bias))  # [B, C, W]
    with torch.no_grad():
        torch.testing.assert_close(m(x), x * a_h[:, :, :, None] * a_w[:, :, None, :])


def test_coordinate_attention_factorises_per_channel():
    """y / x = a_h[c, h] * a_w[c, w]: each channel's ratio map is rank one."""
    torch.manual_seed(0)
    m = coordinate_attention.CoordinateAttention(8).eval()
    _randomise_bn(m)
    x = _randn(2, 8, 5, 6).abs() + 0.5
    with torch.no_grad():
        ratio = (m(x) / x).double()
    sv = torch.linalg.svdvals(ratio)  # [B, C, min(H, W)]
    assert (sv[..., 1] < 1e-5 * sv[..., 0]).all()


def test_coordinate_attention_param_count_default():
    # mip = max(8, 256 // 32) = 8
    expected = (256 * 8 + 8) + 2 * 8 + 2 * (8 * 256 + 256)
    assert param_count(coordinate_attention.CoordinateAttention(256)) == expected


# --------------------------------------------------------------------------- dynamic_conv


@pytest.mark.parametrize(
    "shape,kwargs,out_shape",
    [
        ((2, 8, 7, 5), {}, (2, 8, 7, 5)),
        ((1, 8, 3, 9), dict(out_channels=6, stride=2), (1, 6, 2, 5)),
        ((3, 8, 5, 5), dict(groups=2, bias=False, kernel_size=1), (3, 8, 5, 5)),
        ((2, 8, 6, 4), dict(dilation=2, padding=2, num_kernels=2), (2, 8, 6, 4)),
    ],
)
def test_dynamic_conv_forward_backward(shape, kwargs, out_shape):
    torch.manual_seed(0)
    m = dynamic_conv.DynamicConv(8, **kwargs)
    x = _randn(*shape)
    out = forward_backward(m, x)
    assert out.shape == out_shape
    train_and_eval(m, x)


def test_dynamic_conv_gradcheck():
    torch.manual_seed(0)
    gradcheck(dynamic_conv.DynamicConv(4, temperature=1.0), _randn(2, 4, 3, 5, dtype=torch.float64))


def test_dynamic_conv_is_per_sample_aggregated_conv():
    torch.manual_seed(0)
    m = dynamic_conv.DynamicConv(8, out_channels=6, groups=2, temperature=1.0)
    x = _randn(3, 8, 5, 6)
    with torch.no_grad():
        pi = torch.softmax(
            F.linear(F.relu(F.linear(x.mean(dim=(2, 3)), m.fc1.weight, m.fc1.bias)), m.fc2.weight, m.fc2.bias), 1
        )
        torch.testing.assert_close(m.attention(x), pi)
        torch.testing.assert_close(pi.sum(1), torch.ones(3))
        out = m(x)
        for b in range(3):
            w = sum(pi[b, k] * m.weight[k] for k in range(4))
            bias = sum(pi[b, k] * m.bias[k] for k in range(4))
            torch.testing.assert_close(out[b : b + 1], F.conv2d(x[b : b + 1], w, bias, padding=1, groups=2))


def test_dynamic_conv_kernel_identities():
    """Equal kernels: a static conv whatever the attention (weights sum to one).
    tau -> infinity: uniform attention, the mean kernel. tau -> 0: the argmax kernel."""
    torch.manual_seed(0)
    m = dynamic_conv.DynamicConv(8)
    x = _randn(2, 8, 5, 5)
    with torch.no_grad():
        static = F.conv2d(x, m.weight.mean(0), m.bias.mean(0), padding=1)
        m.temperature = 1e9
        torch.testing.assert_close(m(x), static)
        m.temperature = 1e-6
        top = m.fc2(F.relu(m.fc1(x.mean(dim=(2, 3))))).argmax(1)
        for b in range(2):
            k = top[b].item()
            torch.testing.assert_close(m(x)[b : b + 1], F.conv2d(x[b : b + 1], m.weight[k], m.bias[k], padding=1))
        m.weight.copy_(m.weight[:1].expand_as(m.weight).clone())
        m.bias.copy_(m.bias[:1].expand_as(m.bias).clone())
        m.temperature = 1.0
        torch.testing.assert_close(m(x), F.conv2d(x, m.weight[0], m.bias[0], padding=1))


def test_dynamic_conv_param_count_default():
    expected = (256 * 64 + 64) + (64 * 4 + 4) + 4 * 256 * 256 * 9 + 4 * 256
    assert param_count(dynamic_conv.DynamicConv(256)) == expected


# --------------------------------------------------------------------------- gltr


@pytest.mark.parametrize("shape", [(2, 8, 7), (1, 8, 5), (3, 8, 1), (2, 8, 16)])
def test_gltr_forward_backward(shape):
    torch.manual_seed(0)
    m = gltr.GLTR(8)
    x = _randn(*shape)
    out = forward_backward(m, x)
    assert out.shape == (shape[0], 24)
    train_and_eval(m, x)


def test_gltr_variants():
    torch.manual_seed(0)
    m = gltr.GLTR(12, branches=4, branch_channels=3, reduction=4, kernel_size=5)
    assert train_and_eval(m, _randn(2, 12, 9)).shape == (2, 12)


def test_gltr_gradcheck():
    torch.manual_seed(0)
    gradcheck(gltr.GLTR(4), _randn(2, 4, 5, dtype=torch.float64))


def test_gltr_matches_hand_computation():
    torch.manual_seed(0)
    m = gltr.GLTR(6)
    x = _randn(2, 6, 9)
    fs = [F.conv1d(x, c.weight, c.bias, padding=2**i, dilation=2**i) for i, c in enumerate(m.dtp)]
    f = torch.cat(fs, dim=1)  # [B, 18, T]
    kb = F.conv1d(f, m.conv_b.weight, m.conv_b.bias)
    qc = F.conv1d(f, m.conv_c.weight, m.conv_c.bias)
    out = torch.empty(2, 18)
    for b in range(2):
        scores = kb[b].T @ qc[b]  # [T_i, T_j]
        att = torch.softmax(scores, dim=0)
        torch.testing.assert_close(att.sum(0), torch.ones(9))
        agg = f[b] @ att  # column j = sum_i att[i, j] f[:, i]
        refined = F.conv1d(agg[None], m.W.weight, m.W.bias)[0] + f[b]
        out[b] = refined.mean(1)
    with torch.no_grad():
        torch.testing.assert_close(m(x), out)


def test_gltr_pyramid_receptive_fields_and_zero_attention_output():
    """Branch i sees frames t and t +- 2^i only; with W = 0 the descriptor is mean_t DTP(x)."""
    torch.manual_seed(0)
    m = gltr.GLTR(4)
    impulse = torch.zeros(1, 4, 21)
    impulse[0, :, 10] = 1.0
    with torch.no_grad():
        for i, conv in enumerate(m.dtp):
            resp = (conv(impulse) - conv.bias[None, :, None]).abs().sum(1)[0]
            support = set(torch.nonzero(resp > 1e-7).flatten().tolist())
            assert support == {10 - 2**i, 10, 10 + 2**i}
        m.W.weight.zero_()
        m.W.bias.zero_()
        x = _randn(2, 4, 7)
        torch.testing.assert_close(m(x), m.pyramid(x).mean(2))


def test_gltr_param_count_default():
    dim = 3 * 256
    expected = 3 * (256 * 256 * 3 + 256) + 2 * (dim * dim // 2 + dim // 2) + (dim * dim + dim)
    assert param_count(gltr.GLTR(256)) == expected


# ------------------------------------------------- forward/backward, output shaped like the input
# (mechanism, module for an input shape, input shapes: batch 1, odd, non-square, other ranks)
SHAPE_KEEPING = [
    ("cbam", lambda shape: cbam.CBAM(16, reduction=4), [(2, 16, 7, 5), (1, 16, 3, 9), (3, 16, 1, 1)]),
    ("tam", lambda shape: tam.TemporalAdaptiveModule(8, frames=4), [(2, 8, 4, 5, 3), (1, 8, 4, 1, 1), (3, 8, 4, 7, 2)]),
    (
        "sknet",
        lambda shape: sknet.SelectiveKernel(8, groups=4, reduction=2, min_dim=4),
        [(2, 8, 7, 5), (3, 8, 1, 4), (2, 8, 3, 3)],
    ),
    (
        "residual_attention",
        lambda shape: residual_attention.ResidualAttention(8),
        [(2, 8, 7, 5), (1, 8, 5, 9), (2, 8, 4, 4)],
    ),
    ("bam", lambda shape: bam.BAM(16, reduction=4), [(2, 16, 7, 5), (3, 16, 1, 1), (2, 16, 9, 4)]),
    ("scse", lambda shape: scse.SCSE(8), [(2, 8, 7, 5), (1, 8, 3, 9), (2, 8, 11), (1, 8, 3, 4, 5)]),
    (
        "triplet_attention",
        lambda shape: triplet_attention.TripletAttention(shape[1]),
        [(2, 8, 7, 5), (1, 4, 3, 9), (2, 3, 5, 5)],
    ),
    ("simam", lambda shape: simam.SimAM(), [(2, 8, 7, 5), (1, 3, 3, 9), (2, 4, 10), (1, 2, 3, 4, 5)]),
]


@pytest.mark.parametrize(
    "make,shape",
    [(mk, sh) for _, mk, shapes in SHAPE_KEEPING for sh in shapes],
    ids=[f"{n}-{sh}" for n, _, shapes in SHAPE_KEEPING for sh in shapes],
)
def test_forward_backward_keeps_shape(make, shape):
    torch.manual_seed(0)
    m = make(shape)
    x = _randn(*shape)
    out = forward_backward(m, x)
    assert out.shape == x.shape
    train_and_eval(m, x)
