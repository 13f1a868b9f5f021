"""Tests for the references of blocks published after the survey, group C.

axial_attention, nat, dat: shapes, train/eval, float64 gradcheck, and each mechanism's
identities written from its paper (explicit loops that share no code with the modules).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.reference import axial_attention
from tests.reference.harness import forward_backward, gradcheck, train_and_eval

torch.set_num_threads(1)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def identity_bns_(module: nn.Module) -> nn.Module:
    """Eval-mode BNs that leave their input unchanged (mean 0, var 1 - eps, weight 1, bias 0)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.zero_(), m.running_var.fill_(1 - m.eps)
                m.weight.fill_(1), m.bias.zero_()
    return module.eval()


# ---------------------------------------------------------------- axial_attention
class TestAxialAttention:
    def test_shapes_train_eval(self):
        m = axial_attention.AxialAttention(8, out_channels=12, heads=3, span_h=5, span_w=4, stride=2).double()
        out = train_and_eval(m, rand(2, 8, 5, 4))
        assert out.shape == (2, 12, 2, 2)

    def test_wrong_span_is_refused(self):
        with pytest.raises(ValueError):
            axial_attention.AxialAttention(8, heads=2, span_h=5)(rand(1, 8, 4, 5))

    def test_weights_are_distributions_over_the_axis(self):
        m = axial_attention.AxialAttention(8, heads=2, span_h=5, span_w=3).double()
        forward_backward(m, rand(2, 8, 5, 3))
        for block, length in ((m.hight_block, 5), (m.width_block, 3)):
            w = block.last_weights
            assert w.shape == (2 * (3 if length == 5 else 5), 2, length, length)
            torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))
            assert (w > 0).all()

    def test_position_sensitive_attention_written_out(self):
        """Eq. 4 of the paper at every position, in plain loops, with identity BNs."""
        block = identity_bns_(axial_attention.AxialAttention1d(4, 4, groups=1, span=3).double())
        with torch.no_grad():
            block.relative.normal_(generator=torch.Generator().manual_seed(1))
        x = rand(1, 4, 3, 2)  # height 3 attended, 2 columns
        y = block(x)
        wq = block.qkv_transform.weight[:, :, 0]
        rel = block.relative
        for col in range(2):
            feats = x[0, :, :, col]  # [C, H]
            qkv = wq @ feats  # [8, H]: q 0-1, k 2-3, v 4-7
            q, k, v = qkv[0:2], qkv[2:4], qkv[4:8]
            for o in range(3):
                logits = torch.stack(
                    [
                        q[:, o] @ k[:, p] + q[:, o] @ rel[0:2, o - p + 2] + k[:, p] @ rel[2:4, p - o + 2]
                        for p in range(3)
                    ]
                )
                a = torch.softmax(logits, 0)
                want = sum(a[p] * (v[:, p] + rel[4:8, o - p + 2]) for p in range(3))
                torch.testing.assert_close(y[0, :, o, col], want)

    def test_height_block_keeps_columns_apart(self):
        """Permuting the columns permutes the height attention's output the same way (eval mode)."""
        block = axial_attention.AxialAttention1d(6, 6, groups=3, span=4).double().eval()
        with torch.no_grad():
            for mod in block.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.running_mean.normal_(), mod.running_var.uniform_(0.5, 1.5)
        x = rand(2, 6, 4, 5)
        perm = torch.tensor([3, 0, 4, 1, 2])
        torch.testing.assert_close(block(x[..., perm]), block(x)[..., perm])

    def test_gradcheck(self):
        m = axial_attention.AxialAttention(4, heads=2, span_h=3, span_w=2).double()
        gradcheck(m, rand(2, 4, 3, 2))
