"""Tests for the spatial-attention references, group B.

glore, ocrnet, dnl, hamnet, eanet, sasa, lrnet, san, vit, genet, psanet: shapes,
train/eval, float64 gradcheck, and each mechanism's identities written from its
paper (closed forms and naive loop implementations that share no code with the
modules).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.reference import dnl, eanet, genet, glore, hamnet, lrnet, ocrnet, psanet, san, sasa, vit
from tests.reference.harness import forward_backward, gradcheck, param_count, train_and_eval

torch.set_num_threads(1)


def rand(*shape, seed=0, dtype=None):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture
def f64():
    """Closed-form comparisons run in float64 so tolerances stay tight."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def randomize_(module: nn.Module, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Replace every parameter and BN running statistic with random values (zero-init gates too)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return module


def bn_eval(bn: nn.modules.batchnorm._BatchNorm, t: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Eval-mode batch norm written out: (t - mean) / sqrt(var + eps) * weight + bias."""
    shape = [1] * t.dim()
    shape[dim] = -1
    return (t - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps) * bn.weight.view(
        shape
    ) + bn.bias.view(shape)


def check_shapes(make, cases):
    """forward_backward on each (inputs, expected output shape)."""
    for inputs, expected in cases:
        module = make()
        out = forward_backward(module, *inputs)
        assert tuple(out.shape) == tuple(expected)


# ---------------------------------------------------------------- glore
class TestGloRe:
    def test_shapes_all_ranks(self):
        check_shapes(
            lambda: randomize_(glore.GloRe(8)),
            [
                ((rand(1, 8, 7),), (1, 8, 7)),
                ((rand(2, 8, 5, 3),), (2, 8, 5, 3)),
                ((rand(1, 8, 3, 4, 5),), (1, 8, 3, 4, 5)),
            ],
        )

    def test_parameter_shapes_rank_independent(self):
        m = glore.GloRe(16)
        shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
        assert shapes["conv_state.weight"] == (8, 16) and shapes["conv_proj.weight"] == (4, 16)
        assert shapes["gcn.conv1.weight"] == (4, 4) and shapes["gcn.conv2.weight"] == (8, 8)
        assert "gcn.conv2.bias" not in shapes and "conv_extend.bias" not in shapes
        assert m.blocker.eps == 1e-4

    def test_train_eval(self):
        train_and_eval(randomize_(glore.GloRe(8)), rand(2, 8, 3, 5))

    def test_gradcheck(self):
        gradcheck(randomize_(glore.GloRe(8)), rand(2, 8, 3, 5))

    def test_identity_at_init(self):
        m = glore.GloRe(8)
        x = rand(2, 8, 3, 5)
        assert torch.equal(m(x), x)
        m.eval()
        assert torch.equal(m(x), x)

    @pytest.mark.parametrize("normalize", [False, True])
    def test_closed_form(self, f64, normalize):
        m = randomize_(glore.GloRe(8, mid_channels=3, normalize=normalize)).eval()
        x = rand(2, 8, 4, 3)
        X = x.reshape(2, 8, -1)  # [B, C, N]
        V = torch.einsum("sc,bcn->bsn", m.conv_state.weight, X) + m.conv_state.bias[:, None]
        Bp = torch.einsum("mc,bcn->bmn", m.conv_proj.weight, X) + m.conv_proj.bias[:, None]
        Z = V @ Bp.transpose(1, 2)  # [B, 6, 3]
        if normalize:
            Z = Z / X.shape[2]
        H = Z + (Z @ m.gcn.conv1.weight.T + m.gcn.conv1.bias)  # (I + A) on the node axis
        G = torch.einsum("ts,bsm->btm", m.gcn.conv2.weight, torch.relu(H))
        Y = torch.einsum("cs,bsn->bcn", m.conv_extend.weight, G @ Bp)
        expected = x + bn_eval(m.blocker, Y).reshape(x.shape)
        torch.testing.assert_close(m(x), expected)

    def test_rank_independence(self, f64):
        m = randomize_(glore.GloRe(8)).eval()
        x = rand(2, 8, 3, 4)
        torch.testing.assert_close(m(x).reshape(2, 8, 12), m(x.reshape(2, 8, 12)))
        torch.testing.assert_close(m(x).reshape(2, 8, 1, 3, 4), m(x.reshape(2, 8, 1, 3, 4)))


# ---------------------------------------------------------------- ocrnet
class TestOCRNet:
    def make(self, **kw):
        return ocrnet.OCRNet(8, key_channels=4, **kw)

    def test_shapes(self):
        check_shapes(
            lambda: self.make(),
            [
                ((rand(1, 8, 5, 7), rand(1, 3, 5, 7, seed=1)), (1, 8, 5, 7)),
                ((rand(2, 8, 3, 4), rand(2, 2, 3, 4, seed=1)), (2, 8, 3, 4)),
            ],
        )
        out = forward_backward(ocrnet.OCRNet(8, key_channels=4, out_channels=6), rand(2, 8, 3, 5), rand(2, 4, 3, 5))
        assert out.shape == (2, 6, 3, 5)

    def test_train_eval(self):
        train_and_eval(self.make(), rand(2, 8, 3, 5), rand(2, 3, 3, 5, seed=1))

    def test_gradcheck(self):
        gradcheck(randomize_(ocrnet.OCRNet(4, key_channels=4, dropout=0.0)), rand(2, 4, 3, 5), rand(2, 2, 3, 5, seed=1))

    def test_region_representation_is_masked_mean(self):
        m = self.make()
        x = rand(2, 8, 4, 5)
        labels = torch.randint(0, 3, (2, 4, 5), generator=torch.Generator().manual_seed(3))
        labels[:, 0, :3] = torch.tensor([0, 1, 2])  # every class present
        probs = torch.where(F.one_hot(labels, 3).permute(0, 3, 1, 2).bool(), 0.0, -1e4)
        regions = m.object_regions(x, probs)[..., 0]  # [B, C, K]
        for b in range(2):
            for k in range(3):
                mask = labels[b] == k
                torch.testing.assert_close(regions[b, :, k], x[b][:, mask].mean(dim=1))

    def test_relation_rows_sum_to_one_and_class_permutation(self):
        m = randomize_(self.make(dropout=0.0)).eval()
        x, probs = rand(2, 8, 3, 5), rand(2, 4, 3, 5, seed=1)
        regions = m.object_regions(x, probs)
        torch.testing.assert_close(m.relation(x, regions).sum(-1), torch.ones(2, 15))
        perm = torch.tensor([2, 0, 3, 1])
        torch.testing.assert_close(m(x, probs), m(x, probs[:, perm]))

    def test_closed_form(self, f64):
        m = randomize_(self.make(dropout=0.0)).eval()
        x, probs = rand(2, 8, 3, 5), rand(2, 3, 3, 5, seed=1)

        def cbr(mods, t):  # (1x1 conv + BN + ReLU)* on [B, C, L]
            for i in range(0, len(mods), 3):
                conv, bn = mods[i], mods[i + 1]
                t = torch.einsum("oc,bcl->bol", conv.weight[..., 0, 0], t) + conv.bias[:, None]
                t = torch.relu(bn_eval(bn, t))
            return t

        X = x.reshape(2, 8, 15)
        M = torch.softmax(probs.reshape(2, 3, 15), dim=2)  # spatial softmax per region
        f = torch.einsum("bkn,bcn->bck", M, X)  # region representations
        q, k, v = cbr(m.f_pixel, X), cbr(m.f_object, f), cbr(m.f_down, f)
        w = torch.softmax(torch.einsum("bcn,bck->bnk", q, k) / 2.0, dim=-1)  # sqrt(key_channels=4)
        y = cbr(m.f_up, torch.einsum("bnk,bck->bcn", w, v))
        expected = cbr(m.conv_bn_dropout[:3], torch.cat([y, X], 1)).reshape(2, 8, 3, 5)
        torch.testing.assert_close(m(x, probs), expected)

    def test_gather_softmax_variant(self):
        m = randomize_(self.make(dropout=0.0)).eval()
        x, probs = rand(2, 8, 3, 5), rand(2, 4, 3, 5, seed=1)
        other = ocrnet.OCRNet(8, key_channels=4, dropout=0.0, gather_softmax_dim="classes")
        other.load_state_dict(m.state_dict())
        other.eval()
        assert not torch.allclose(m(x, probs), other(x, probs))


# ---------------------------------------------------------------- dnl
class TestDNL:
    def test_shapes_all_ranks(self):
        check_shapes(
            lambda: randomize_(dnl.DNL(8)),
            [
                ((rand(1, 8, 7),), (1, 8, 7)),
                ((rand(2, 8, 5, 3),), (2, 8, 5, 3)),
                ((rand(1, 8, 2, 3, 5),), (1, 8, 2, 3, 5)),
            ],
        )
        check_shapes(
            lambda: randomize_(dnl.DNL(8, downsample=True)),
            [
                ((rand(1, 8, 6),), (1, 8, 6)),
                ((rand(2, 8, 4, 6),), (2, 8, 4, 6)),
                ((rand(1, 8, 2, 4, 4),), (1, 8, 2, 4, 4)),
            ],
        )

    def test_train_eval(self):
        train_and_eval(randomize_(dnl.DNL(8)), rand(2, 8, 3, 5))

    def test_gradcheck(self):
        m = randomize_(dnl.DNL(8, temperature=0.5), scale=0.3)
        gradcheck(m, rand(2, 8, 3, 5))

    def test_init_gamma_zero_leaves_unary_term(self, f64):
        m = dnl.DNL(8)
        assert m.gamma.item() == 0.0
        x = rand(2, 8, 3, 5)
        X = x.reshape(2, 8, -1)
        v = torch.einsum("oc,bcn->bon", m.conv_value.weight, X)
        u = torch.softmax(torch.einsum("c,bcn->bn", m.conv_mask.weight[0], X) + m.conv_mask.bias, dim=1)
        expected = x + (v * u[:, None]).sum(-1)[..., None, None]
        torch.testing.assert_close(m(x), expected)

    def test_closed_form(self, f64):
        m = randomize_(dnl.DNL(8, temperature=0.5), scale=0.3)
        x = rand(2, 8, 3, 4)
        X = x.reshape(2, 8, -1)
        q = torch.einsum("pc,bcn->bpn", m.conv_query.weight, X) + m.conv_query.bias[:, None]
        k = torch.einsum("pc,bcn->bpn", m.conv_key.weight, X) + m.conv_key.bias[:, None]
        q = q - q.mean(-1, keepdim=True)
        k = k - k.mean(-1, keepdim=True)
        A = torch.softmax(torch.einsum("bpi,bpj->bij", q, k) / math.sqrt(4) / 0.5, dim=-1)
        v = torch.einsum("oc,bcn->bon", m.conv_value.weight, X)
        u = torch.softmax(torch.einsum("c,bcn->bn", m.conv_mask.weight[0], X) + m.conv_mask.bias, dim=1)
        y = m.gamma * torch.einsum("bij,boj->boi", A, v) + (v * u[:, None]).sum(-1, keepdim=True)
        torch.testing.assert_close(m(x), x + y.reshape(x.shape))
        torch.testing.assert_close(m.pairwise(x).sum(-1), torch.ones(2, 12))

    def test_whitening_removes_key_query_bias(self):
        x = rand(2, 8, 3, 5)
        for whiten, same in ((True, True), (False, False)):
            m = randomize_(dnl.DNL(8, temperature=0.5, whiten=whiten), scale=0.3)
            before = m(x)
            with torch.no_grad():
                m.conv_query.bias.add_(torch.linspace(-1, 1, 4))
                m.conv_key.bias.add_(torch.linspace(1, -2, 4))
            assert torch.allclose(before, m(x), atol=1e-5) == same


# ---------------------------------------------------------------- hamnet
class Seeded(nn.Module):
    """Calls a stochastic module with a freshly seeded generator (for gradcheck)."""

    def __init__(self, inner: nn.Module, seed: int = 0):
        super().__init__()
        self.inner, self.seed = inner, seed

    def forward(self, x):
        return self.inner(x, generator=torch.Generator().manual_seed(self.seed))


class TestHamNet:
    def make(self, **kw):
        kw = {"ham_channels": 8, "rank": 3, **kw}
        return hamnet.HamNet(6, **kw)

    def test_shapes(self):
        check_shapes(
            lambda: self.make(),
            [
                ((rand(1, 6, 5, 7),), (1, 6, 5, 7)),
                ((rand(2, 6, 3, 4),), (2, 6, 3, 4)),
            ],
        )
        check_shapes(lambda: self.make(version="V1", groups=2), [((rand(2, 6, 3, 5),), (2, 6, 3, 5))])

    def test_train_eval(self):
        train_and_eval(Seeded(self.make()), rand(2, 6, 3, 5))

    def test_gradcheck(self):
        m = randomize_(self.make(train_steps=2, eval_steps=2, one_step_grad=False))
        with torch.no_grad():  # keep the NMF input clearly positive
            m.lower_bread.bias.fill_(1.0)
        gradcheck(Seeded(m), rand(2, 6, 3, 5))

    def test_generator_reproducible(self):
        m, x = self.make(), rand(2, 6, 3, 5)
        a = m(x, generator=torch.Generator().manual_seed(1))
        b = m(x, generator=torch.Generator().manual_seed(1))
        c = m(x, generator=torch.Generator().manual_seed(2))
        assert torch.equal(a, b) and not torch.allclose(a, c)

    def test_iteration_counts_change_output(self):
        x = rand(2, 6, 3, 5)
        outs = []
        for steps in (1, 6):
            torch.manual_seed(0)
            m = self.make(train_steps=steps)
            outs.append(m(x, generator=torch.Generator().manual_seed(3)))
        assert not torch.allclose(outs[0], outs[1])

    def test_eval_uses_eval_steps(self):
        m = self.make(train_steps=2, eval_steps=5)
        z = torch.rand(2, 8, 3, 5)
        m.eval()
        a = m.nmf(z, torch.Generator().manual_seed(0))
        m.train()
        b = m.nmf(z, torch.Generator().manual_seed(0), steps=5)
        c = m.nmf(z, torch.Generator().manual_seed(0))
        assert torch.equal(a, b) and not torch.allclose(a, c)

    def test_nmf_objective_non_increasing(self):
        m = self.make(rank=4).double()
        z = torch.rand(3, 8, 5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        errs = []
        for steps in (0, 1, 3, 10, 30):
            rec = m.nmf(z, torch.Generator().manual_seed(1), steps=steps)
            errs.append((rec - z).pow(2).sum().item())
        assert all(b <= a + 1e-9 for a, b in zip(errs, errs[1:]))
        assert errs[-1] < 0.8 * errs[0]
        rec, bases, coef = m.nmf(z, torch.Generator().manual_seed(1), return_factors=True)
        assert (bases >= 0).all() and (coef >= 0).all() and bases.shape == (3, 8, 4) and coef.shape == (3, 30, 4)

    def test_one_step_gradient(self):
        x = rand(2, 6, 3, 5)
        base = self.make()
        full = self.make(one_step_grad=False)
        full.load_state_dict(base.state_dict())
        grads = []
        for m in (base, full):
            xi = x.clone().requires_grad_()
            out = m(xi, generator=torch.Generator().manual_seed(4))
            (out * rand(*out.shape, seed=9)).sum().backward()
            grads.append((out.detach(), xi.grad))
        torch.testing.assert_close(grads[0][0], grads[1][0])
        assert not torch.allclose(grads[0][1], grads[1][1])


# ---------------------------------------------------------------- eanet
class TestEANet:
    def test_shapes(self):
        check_shapes(
            lambda: eanet.EANet(8, memory_units=4),
            [
                ((rand(1, 8, 5, 7),), (1, 8, 5, 7)),
                ((rand(2, 8, 3, 4),), (2, 8, 3, 4)),
            ],
        )

    def test_train_eval(self):
        train_and_eval(eanet.EANet(8, memory_units=4), rand(2, 8, 3, 5))

    def test_gradcheck(self):
        gradcheck(randomize_(eanet.EANet(4, memory_units=3)), rand(2, 4, 3, 5))

    def test_tied_init(self):
        m = eanet.EANet(8, memory_units=4)
        assert torch.equal(m.linear_0.weight, m.linear_1.weight.permute(1, 0, 2))
        torch.testing.assert_close(m.linear_1.weight.std(), torch.tensor(math.sqrt(2 / 8)), rtol=0.5, atol=0)

    def test_double_normalisation_and_closed_form(self, f64):
        m = randomize_(eanet.EANet(8, memory_units=4)).eval()
        x = rand(2, 8, 3, 5)
        a = m.attention(x)
        torch.testing.assert_close(a.sum(dim=1), torch.ones(2, 15))
        X = x.reshape(2, 8, -1)
        f = torch.einsum("oc,bcn->bon", m.conv1.weight[..., 0, 0], X) + m.conv1.bias[:, None]
        logits = torch.einsum("sc,bcn->bsn", m.linear_0.weight[..., 0], f)
        e = torch.exp(logits - logits.amax(-1, keepdim=True))
        att = e / e.sum(-1, keepdim=True)  # softmax over positions
        att = att / (1e-9 + att.sum(1, keepdim=True))  # l1 over memory units
        y = torch.einsum("cs,bsn->bcn", m.linear_1.weight[..., 0], att)
        y = bn_eval(m.conv2[1], torch.einsum("oc,bcn->bon", m.conv2[0].weight[..., 0, 0], y))
        torch.testing.assert_close(m(x), torch.relu(x + y.reshape(x.shape)))


# ---------------------------------------------------------------- sasa
def naive_sasa(m: sasa.SASA, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel loop over the window, as written in the paper's equation."""
    b, _, h, w = x.shape
    k, o, g = m.kernel_size, m.out_channels, m.heads
    d = o // g
    q = torch.einsum("oc,bchw->bohw", m.query.weight[..., 0, 0], x)
    kk = torch.einsum("oc,bchw->bohw", m.key.weight[..., 0, 0], x)
    v = torch.einsum("oc,bchw->bohw", m.value.weight[..., 0, 0], x)
    half = k // 2
    out = torch.zeros(b, o, h, w, dtype=x.dtype)
    for bi in range(b):
        for i in range(h):
            for j in range(w):
                for head in range(g):
                    sl = slice(head * d, (head + 1) * d)
                    logits, vals = [], []
                    for da in range(-half, half + 1):
                        for db in range(-half, half + 1):
                            a, c = i + da, j + db
                            inside = 0 <= a < h and 0 <= c < w
                            if not inside and m.padding_mode == "mask":
                                continue
                            key = kk[bi, :, a, c] if inside else torch.zeros(o, dtype=x.dtype)
                            val = v[bi, :, a, c] if inside else torch.zeros(o, dtype=x.dtype)
                            r = torch.cat([m.rel_h[:, da + half], m.rel_w[:, db + half]])
                            logits.append(q[bi, sl, i, j] @ (key[sl] + r[sl]))
                            vals.append(val[sl])
                    wts = torch.softmax(torch.stack(logits), dim=0)
                    out[bi, sl, i, j] = (wts[:, None] * torch.stack(vals)).sum(0)
    return out


class TestSASA:
    def test_shapes(self):
        check_shapes(
            lambda: sasa.SASA(8, kernel_size=3, heads=2),
            [
                ((rand(1, 8, 5, 7),), (1, 8, 5, 7)),
                ((rand(2, 8, 3, 4),), (2, 8, 3, 4)),
            ],
        )
        check_shapes(
            lambda: sasa.SASA(8, out_channels=4, kernel_size=5, heads=1, padding_mode="mask"),
            [((rand(1, 8, 3, 5),), (1, 4, 3, 5))],
        )
        assert sasa.SASA(16).kernel_size == 7 and sasa.SASA(16).heads == 8

    def test_train_eval(self):
        train_and_eval(sasa.SASA(8, kernel_size=3, heads=2), rand(2, 8, 3, 5))

    @pytest.mark.parametrize("mode", ["zeros", "mask"])
    def test_gradcheck(self, mode):
        gradcheck(sasa.SASA(4, kernel_size=3, heads=2, padding_mode=mode), rand(1, 4, 3, 5))

    @pytest.mark.parametrize("mode", ["zeros", "mask"])
    def test_matches_paper_loop(self, f64, mode):
        torch.manual_seed(0)
        m = sasa.SASA(4, out_channels=6, kernel_size=3, heads=2, padding_mode=mode)
        x = rand(2, 4, 3, 4)
        torch.testing.assert_close(m(x), naive_sasa(m, x))
        torch.testing.assert_close(m.attention(x).sum(2), torch.ones(2, 2, 12))

    def test_translation_equivariance(self):
        # relative (not absolute) positions: shifting the image shifts the output
        # wherever the window stays inside the image
        torch.manual_seed(0)
        m = sasa.SASA(4, kernel_size=3, heads=2)
        x = rand(1, 4, 7, 7)
        shifted = torch.roll(x, shifts=1, dims=3)
        torch.testing.assert_close(m(shifted)[..., 1:6, 2:6], m(x)[..., 1:6, 1:5])


# ---------------------------------------------------------------- lrnet
def naive_lrnet(m: lrnet.LRNet, x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    k, g = m.kernel_size, m.groups
    half = k // 2
    q = torch.einsum("gc,bchw->bghw", m.query.weight[..., 0, 0], x)
    kk = torch.einsum("gc,bchw->bghw", m.key.weight[..., 0, 0], x)
    l1, l2 = m.geometry[0], m.geometry[2]
    y = torch.zeros_like(x)
    for bi in range(b):
        for i in range(h):
            for j in range(w):
                for grp in range(g):
                    logits, vals = [], []
                    for da in range(-half, half + 1):
                        for db in range(-half, half + 1):
                            a, cc = i + da, j + db
                            if not (0 <= a < h and 0 <= cc < w):
                                continue
                            pos = torch.tensor([float(da), float(db)], dtype=x.dtype)
                            geo = (
                                l2.weight[grp, :, 0, 0] @ torch.relu(l1.weight[..., 0, 0] @ pos + l1.bias)
                                + l2.bias[grp]
                            )
                            qv, kv = q[bi, grp, i, j], kk[bi, grp, a, cc]
                            app = {"squared_diff": -((qv - kv) ** 2), "abs_diff": -(qv - kv).abs(), "product": qv * kv}[
                                m.composability
                            ]
                            logits.append(app + geo)
                            vals.append(x[bi, grp * m.m : (grp + 1) * m.m, a, cc])
                    wts = torch.softmax(torch.stack(logits), dim=0)
                    y[bi, grp * m.m : (grp + 1) * m.m, i, j] = (wts[:, None] * torch.stack(vals)).sum(0)
    if m.proj is None:
        return y
    return torch.einsum("oc,bchw->bohw", m.proj.weight[..., 0, 0], y)


class TestLRNet:
    def test_shapes(self):
        check_shapes(
            lambda: lrnet.LRNet(8, kernel_size=3, m=4),
            [
                ((rand(1, 8, 5, 7),), (1, 8, 5, 7)),
                ((rand(2, 8, 3, 4),), (2, 8, 3, 4)),
            ],
        )
        check_shapes(
            lambda: lrnet.LRNet(8, out_channels=5, kernel_size=5, m=2, composability="product"),
            [((rand(1, 8, 3, 5),), (1, 5, 3, 5))],
        )
        assert lrnet.LRNet(64).kernel_size == 7 and lrnet.LRNet(64).groups == 8

    def test_train_eval(self):
        train_and_eval(lrnet.LRNet(8, kernel_size=3, m=4), rand(2, 8, 3, 5))

    def test_gradcheck(self):
        gradcheck(lrnet.LRNet(4, kernel_size=3, m=2), rand(1, 4, 3, 5))

    @pytest.mark.parametrize("comp", ["squared_diff", "abs_diff", "product"])
    def test_matches_paper_loop(self, f64, comp):
        torch.manual_seed(0)
        m = lrnet.LRNet(4, out_channels=3, kernel_size=3, m=2, composability=comp)
        x = rand(2, 4, 3, 4)
        torch.testing.assert_close(m(x), naive_lrnet(m, x))

    def test_weights_normalised_and_outside_excluded(self):
        torch.manual_seed(0)
        m = lrnet.LRNet(4, kernel_size=3, m=2)
        a = m.attention(rand(1, 4, 3, 4))  # [1, 2, 9, 12]
        torch.testing.assert_close(a.sum(2), torch.ones(1, 2, 12))
        corner = a[0, :, :, 0].reshape(2, 3, 3)  # window of pixel (0, 0)
        assert (corner[:, 0, :] == 0).all() and (corner[:, :, 0] == 0).all()
        assert (corner[:, 1:, 1:] > 0).all()

    def test_no_proj_is_convex_combination(self):
        m = lrnet.LRNet(4, kernel_size=3, m=2, out_proj=False)
        x = torch.ones(1, 4, 3, 5) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)
        torch.testing.assert_close(m(x), x)  # weights sum to one on a constant map


# ---------------------------------------------------------------- san
def naive_san_pairwise(m: san.SAN, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode SAN pairwise attention with reflection-padded footprints, by loops."""
    b, _, h, w = x.shape
    k = m.kernel_size
    half = k // 2

    def refl(i, n):
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)

    def conv(c, t):
        return torch.einsum("oc,bchw->bohw", c.weight[..., 0, 0], t) + c.bias.view(1, -1, 1, 1)

    x1, x2, x3 = conv(m.conv1, x), conv(m.conv2, x), conv(m.conv3, x)
    pos = torch.stack([torch.linspace(-1, 1, w).expand(h, w), torch.linspace(-1, 1, h)[:, None].expand(h, w)])
    p = conv(m.conv_p, pos[None].to(x.dtype))[0]
    bn1, _, c1, bn2, _, c2 = m.conv_w
    cw = m.out_planes // m.share_planes
    out = torch.zeros(b, m.out_planes, h, w, dtype=x.dtype)
    for bi in range(b):
        for i in range(h):
            for j in range(w):
                logits, vals = [], []
                for da in range(-half, half + 1):
                    for db in range(-half, half + 1):
                        a, c = refl(i + da, h), refl(j + db, w)
                        delta = torch.cat([x1[bi, :, i, j] - x2[bi, :, a, c], p[:, i, j] - p[:, a, c]])
                        hdn = torch.relu(bn_eval(bn2, (c1.weight[..., 0, 0] @ torch.relu(bn_eval(bn1, delta, 0))), 0))
                        logits.append(c2.weight[..., 0, 0] @ hdn + c2.bias)
                        vals.append(x3[bi, :, a, c])
                wts = torch.softmax(torch.stack(logits), dim=0)  # [kk, cw]
                for ch in range(m.out_planes):
                    out[bi, ch, i, j] = (wts[:, ch % cw] * torch.stack(vals)[:, ch]).sum()
    return out


class TestSAN:
    @pytest.mark.parametrize("sa_type", ["pairwise", "patchwise"])
    def test_shapes(self, sa_type):
        check_shapes(
            lambda: san.SAN(16, kernel_size=3, share_planes=2, sa_type=sa_type),
            [
                ((rand(1, 16, 5, 7),), (1, 4, 5, 7)),
                ((rand(2, 16, 3, 4),), (2, 4, 3, 4)),
            ],
        )
        check_shapes(lambda: san.SAN(64, sa_type=sa_type), [((rand(1, 64, 4, 5),), (1, 16, 4, 5))])

    @pytest.mark.parametrize("sa_type", ["pairwise", "patchwise"])
    def test_train_eval(self, sa_type):
        train_and_eval(san.SAN(16, kernel_size=3, share_planes=2, sa_type=sa_type), rand(2, 16, 3, 5))

    @pytest.mark.parametrize("sa_type", ["pairwise", "patchwise"])
    def test_gradcheck(self, sa_type):
        m = randomize_(san.SAN(8, rel_planes=2, out_planes=4, share_planes=2, kernel_size=3, sa_type=sa_type))
        gradcheck(m, rand(1, 8, 3, 4))

    def test_defaults(self):
        m = san.SAN(64)
        assert (m.rel_planes, m.out_planes, m.share_planes, m.kernel_size) == (4, 16, 8, 7)

    def test_pairwise_matches_loop(self, f64):
        m = randomize_(san.SAN(8, rel_planes=2, out_planes=6, share_planes=3, kernel_size=3)).eval()
        x = rand(2, 8, 3, 4)
        torch.testing.assert_close(m(x), naive_san_pairwise(m, x))
        torch.testing.assert_close(m.attention(x).sum(2), torch.ones(2, 2, 12))

    def test_patchwise_weight_layout(self, f64):
        # with conv_w's last layer reading only its bias, every pixel gets the same
        # [cw, kk] weights, so the output is a fixed per-channel filter over the
        # reflection-padded footprint of conv3(x)
        m = randomize_(
            san.SAN(8, rel_planes=2, out_planes=4, share_planes=2, kernel_size=3, sa_type="patchwise")
        ).eval()
        with torch.no_grad():
            m.conv_w[-1].weight.zero_()
        x = rand(1, 8, 3, 4)
        wts = m.conv_w[-1].bias.view(2, 9)  # [cw, kk]
        v = torch.einsum("oc,bchw->bohw", m.conv3.weight[..., 0, 0], x) + m.conv3.bias.view(1, -1, 1, 1)
        vp = F.pad(v, (1, 1, 1, 1), mode="reflect")
        expected = torch.zeros(1, 4, 3, 4)
        for ch in range(4):
            for t in range(9):
                da, db = divmod(t, 3)
                expected[0, ch] += wts[ch % 2, t] * vp[0, ch, da : da + 3, db : db + 4]
        torch.testing.assert_close(m(x), expected)


# ---------------------------------------------------------------- vit
def small_vit(**kw):
    kw = {"channels": 3, "image_size": (12, 20), "patch_size": 4, "hidden_size": 8, "num_heads": 2, "mlp_dim": 16, **kw}
    return vit.ViT(**kw)


class TestViT:
    def test_shapes(self):
        check_shapes(
            lambda: small_vit(),
            [
                ((rand(1, 3, 12, 20),), (1, 16, 8)),
                ((rand(2, 3, 13, 22),), (2, 16, 8)),  # VALID conv crops the remainder
            ],
        )
        check_shapes(lambda: small_vit(cls_token=False, depth=2, image_size=(8, 4)), [((rand(1, 3, 8, 4),), (1, 2, 8))])

    def test_defaults_are_vit_b16(self):
        m = vit.ViT()
        assert m.pos_embedding.shape == (1, 197, 768) and m.embedding.weight.shape == (768, 3, 16, 16)
        blk = m.blocks[0]
        assert blk.fc1.weight.shape == (3072, 768) and blk.num_heads == 12 and blk.ln1.eps == 1e-6
        assert len(m.blocks) == 1 and torch.equal(m.cls, torch.zeros(1, 1, 768))

    def test_train_eval(self):
        train_and_eval(small_vit(dropout=0.1, attention_dropout=0.1), rand(2, 3, 12, 20))

    def test_gradcheck(self):
        gradcheck(small_vit(channels=2, image_size=(8, 12), hidden_size=4, mlp_dim=8), rand(1, 2, 8, 12))

    def test_matches_equations(self, f64):
        torch.manual_seed(0)
        m = small_vit(gelu_approximate="none").eval()
        x = rand(2, 3, 12, 20)
        patches = x.reshape(2, 3, 3, 4, 5, 4).permute(0, 2, 4, 1, 3, 5).reshape(2, 15, 48)
        t = patches @ m.embedding.weight.reshape(8, 48).T + m.embedding.bias
        t = torch.cat([m.cls.expand(2, 1, 8), t], 1) + m.pos_embedding

        def ln(z, mod):
            mu = z.mean(-1, keepdim=True)
            var = ((z - mu) ** 2).mean(-1, keepdim=True)
            return (z - mu) / torch.sqrt(var + 1e-6) * mod.weight + mod.bias

        blk = m.blocks[0]
        z = ln(t, blk.ln1)
        heads = []
        for hh in range(2):
            sl = slice(4 * hh, 4 * hh + 4)
            q = (z @ blk.query.weight.T + blk.query.bias)[..., sl]
            k = (z @ blk.key.weight.T + blk.key.bias)[..., sl]
            v = (z @ blk.value.weight.T + blk.value.bias)[..., sl]
            a = torch.softmax(q @ k.transpose(1, 2) / 2.0, dim=-1)
            torch.testing.assert_close(a.sum(-1), torch.ones(2, 16))
            heads.append(a @ v)
        t = t + torch.cat(heads, -1) @ blk.out.weight.T + blk.out.bias
        hdn = ln(t, blk.ln2) @ blk.fc1.weight.T + blk.fc1.bias
        hdn = 0.5 * hdn * (1 + torch.erf(hdn / math.sqrt(2)))
        t = t + hdn @ blk.fc2.weight.T + blk.fc2.bias
        torch.testing.assert_close(m(x), ln(t, m.encoder_norm))

    def test_patch_permutation_equivariance(self, f64):
        torch.manual_seed(0)
        m = small_vit(cls_token=False).eval()
        with torch.no_grad():
            m.pos_embedding.zero_()
        x = rand(1, 3, 12, 20)
        blocks = x.reshape(1, 3, 3, 4, 5, 4).permute(0, 2, 4, 1, 3, 5).reshape(1, 15, 3, 4, 4)
        perm = torch.randperm(15, generator=torch.Generator().manual_seed(1))
        xp = blocks[:, perm].reshape(1, 3, 5, 3, 4, 4).permute(0, 3, 1, 4, 2, 5).reshape(1, 3, 12, 20)
        torch.testing.assert_close(m(xp), m(x)[:, perm])

    def test_tanh_gelu_default(self):
        torch.manual_seed(0)
        a = small_vit().eval()
        b = small_vit(gelu_approximate="none").eval()
        b.load_state_dict(a.state_dict())
        x = rand(1, 3, 12, 20) * 3
        ya, yb = a(x), b(x)
        assert not torch.equal(ya, yb) and torch.allclose(ya, yb, atol=5e-2)


# ---------------------------------------------------------------- genet
class TestGENet:
    def test_shapes(self):
        # batch 1 runs in eval mode: a global gather leaves one value per channel for BN
        x = rand(1, 8, 5, 7)
        check_shapes(lambda: randomize_(genet.GENet(8, spatial_size=(5, 7))).eval(), [((x,), (1, 8, 5, 7))])
        check_shapes(
            lambda: randomize_(genet.GENet(8, spatial_size=(5, 7), use_mlp=True, reduction=4)),
            [((rand(2, 8, 5, 7),), (2, 8, 5, 7))],
        )
        for extent in (2, 4, 8):
            check_shapes(lambda: randomize_(genet.GENet(8, extent=extent)), [((rand(2, 8, 9, 4),), (2, 8, 9, 4))])
            check_shapes(lambda: randomize_(genet.GENet(8, extent=extent)).eval(), [((x,), (1, 8, 5, 7))])
        out = genet.GENet(8, extent=2, extra_params=False)(x)
        assert out.shape == x.shape and param_count(genet.GENet(8, extra_params=False)) == 0

    def test_train_eval(self):
        train_and_eval(randomize_(genet.GENet(8, spatial_size=(3, 5), use_mlp=True, reduction=4)), rand(2, 8, 3, 5))
        train_and_eval(randomize_(genet.GENet(8, extent=4)), rand(2, 8, 5, 7))

    @pytest.mark.parametrize(
        "kw", [{"spatial_size": (3, 5)}, {"extent": 2}, {"spatial_size": (3, 5), "use_mlp": True, "reduction": 2}]
    )
    def test_gradcheck(self, kw):
        gradcheck(randomize_(genet.GENet(4, **kw)), rand(2, 4, 3, 5))

    def test_parameter_free_global_closed_form(self, f64):
        x = rand(2, 6, 5, 7)
        expected = x * torch.sigmoid(x.mean(dim=(2, 3), keepdim=True))
        torch.testing.assert_close(genet.GENet(6, extra_params=False)(x), expected)

    def test_parameter_free_extent_closed_form(self, f64):
        x = rand(1, 3, 5, 7)
        e = 2
        expected = torch.empty_like(x)
        for i in range(5):
            for j in range(7):
                bi, bj = i // e, j // e
                cell = x[0, :, bi * e : bi * e + e, bj * e : bj * e + e]  # clipped at the border
                expected[0, :, i, j] = x[0, :, i, j] * torch.sigmoid(cell.mean(dim=(1, 2)))
        torch.testing.assert_close(genet.GENet(3, extent=e, extra_params=False)(x), expected)

    def test_global_theta_closed_form(self, f64):
        m = randomize_(genet.GENet(4, spatial_size=(3, 5))).eval()
        x = rand(2, 4, 3, 5)
        g = (m.gather[0].weight[:, 0] * x).sum(dim=(2, 3))  # full-extent depthwise conv
        expected = x * torch.sigmoid(bn_eval(m.gather[1], g))[..., None, None]
        torch.testing.assert_close(m(x), expected)
        with pytest.raises(ValueError):
            m(rand(2, 4, 4, 5))

    def test_theta_plus_closed_form(self, f64):
        m = randomize_(genet.GENet(4, spatial_size=(3, 5), use_mlp=True, reduction=2)).eval()
        x = rand(2, 4, 3, 5)
        g = torch.relu(bn_eval(m.gather[1], (m.gather[0].weight[:, 0] * x).sum(dim=(2, 3))))
        s = torch.sigmoid(
            m.fc2.weight[..., 0, 0] @ torch.relu(m.fc1.weight[..., 0, 0] @ g.T + m.fc1.bias[:, None])
            + m.fc2.bias[:, None]
        ).T
        torch.testing.assert_close(m(x), x * s[..., None, None])


# ---------------------------------------------------------------- psanet
def naive_psa_buffer(maps: torch.Tensor, kind: str, mask_h: int, mask_w: int) -> torch.Tensor:
    """PSAMask as the official C++/CUDA kernels compute it: buffer[n, c, h, w] from [n, mh*mw, h, w].

    (The commented-out python fallback in semseg's psamask.py transposes the
    distribute buffer once more; the compiled kernels, which are what runs, do not.)
    """
    n, _, fh, fw = maps.shape
    hh, hw = (mask_h - 1) // 2, (mask_w - 1) // 2
    out = torch.zeros(n, fh * fw, fh, fw, dtype=maps.dtype)
    for b in range(n):
        for h in range(fh):
            for w in range(fw):
                hs, he = max(0, hh - h), min(mask_h, fh + hh - h)
                ws, we = max(0, hw - w), min(mask_w, fw + hw - w)
                hcs, hce = max(0, h - hh), min(fh, h + hh + 1)
                wcs, wce = max(0, w - hw), min(fw, w + hw + 1)
                ori = maps[b, :, h, w].view(mask_h, mask_w)
                com = torch.zeros(fh, fw, dtype=maps.dtype)
                com[hcs:hce, wcs:wce] = ori[hs:he, ws:we]
                if kind == "collect":
                    out[b, :, h, w] = com.view(-1)
                else:
                    out[b, h * fw + w] = com
    return out


class TestPSANet:
    def test_shapes(self):
        check_shapes(lambda: psanet.PSANet(6, mid_channels=4, feat_size=(5, 7)), [((rand(1, 6, 5, 7),), (1, 12, 5, 7))])
        for kw in (
            {"psa_type": "collect"},
            {"psa_type": "distribute", "shrink_factor": 1},
            {"compact": True},
            {"psa_softmax": False, "normalization_factor": None},
        ):
            check_shapes(
                lambda: psanet.PSANet(6, mid_channels=4, feat_size=(4, 6), **kw), [((rand(2, 6, 4, 6),), (2, 12, 4, 6))]
            )
        m = psanet.PSANet(16)
        assert m.inner == (30, 30) and m.mask == (59, 59) and m.attention[-1].out_channels == 59 * 59

    def test_train_eval(self):
        train_and_eval(psanet.PSANet(6, mid_channels=4, feat_size=(5, 7)), rand(2, 6, 5, 7))

    def test_gradcheck(self):
        gradcheck(randomize_(psanet.PSANet(4, mid_channels=3, feat_size=(3, 5), shrink_factor=1)), rand(2, 4, 3, 5))

    @pytest.mark.parametrize("mask", [None, (3, 5)])
    def test_psamask_matches_official_semantics(self, f64, mask):
        m = psanet.PSANet(4, mid_channels=3, feat_size=(4, 5), shrink_factor=1, psa_softmax=False, mask_size=mask)
        mh, mw = m.mask
        maps = rand(2, mh * mw, 4, 5)
        for kind in ("collect", "distribute"):
            buffer = naive_psa_buffer(maps, kind, mh, mw).reshape(2, 20, 20)
            torch.testing.assert_close(m.attention_matrix(maps, kind), buffer)

    def test_bidirectional_closed_form(self, f64):
        m = randomize_(psanet.PSANet(4, mid_channels=3, feat_size=(3, 4), shrink_factor=1)).eval()
        x = rand(2, 4, 3, 4)

        def seq(mods, t):
            for mod in mods:
                if isinstance(mod, nn.Conv2d):
                    t = torch.einsum("oc,bchw->bohw", mod.weight[..., 0, 0], t)
                elif isinstance(mod, nn.BatchNorm2d):
                    t = bn_eval(mod, t)
                else:
                    t = torch.relu(t)
            return t

        zc, zd = seq(m.reduce, x), seq(m.reduce_p, x)
        bc = torch.softmax(naive_psa_buffer(seq(m.attention, zc), "collect", 5, 7).reshape(2, 12, 12), dim=1)
        bd = torch.softmax(naive_psa_buffer(seq(m.attention_p, zd), "distribute", 5, 7).reshape(2, 12, 12), dim=1)
        torch.testing.assert_close(bc.sum(1), torch.ones(2, 12))
        yc = (zc.reshape(2, 3, 12) @ bc).reshape(2, 3, 3, 4)
        yd = (zd.reshape(2, 3, 12) @ bd).reshape(2, 3, 3, 4)
        expected = torch.cat([x, seq(m.proj, torch.cat([yc, yd], 1))], 1)
        torch.testing.assert_close(m(x), expected)

    def test_collect_only_sees_own_map(self):
        # with psa_softmax off and a map that is 1 at the centre offset, collect is the identity
        m = psanet.PSANet(4, mid_channels=3, feat_size=(3, 4), shrink_factor=1, psa_softmax=False)
        maps = torch.zeros(1, 5 * 7, 3, 4)
        maps[:, 2 * 7 + 3] = 1.0
        torch.testing.assert_close(m.attention_matrix(maps, "collect")[0], torch.eye(12))
        torch.testing.assert_close(m.attention_matrix(maps, "distribute")[0], torch.eye(12))

    def test_wrong_size_rejected(self):
        with pytest.raises(ValueError):
            psanet.PSANet(4, mid_channels=3, feat_size=(3, 4))(rand(1, 4, 4, 4))
