"""Tests of the MaxViT reference (tests/reference/maxvit.py): shapes, train/eval, float64 gradcheck, and the
paper's properties written out with explicit loops: block attention is local (a token reaches only its
P x P window), grid attention is sparse and global (a token reaches the tokens H/G, W/G apart across the
whole map), the bias depends on relative offsets only, and one window's attention written from Eq. (1)."""

from __future__ import annotations

import pytest
import torch

from tests.reference.harness import gradcheck, train_and_eval
from tests.reference.maxvit import MaxViTAttention, partition, relative_bias_index, unpartition

torch.set_num_threads(1)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def module(**kw):
    torch.manual_seed(0)
    m = MaxViTAttention(**kw).double()
    with torch.no_grad():
        if m.relative_position_bias_table is not None:
            m.relative_position_bias_table.normal_()
    return m


@pytest.mark.parametrize("kind", ["block", "grid"])
@pytest.mark.parametrize("shape", [(2, 4, 6, 16), (1, 2, 2, 16), (3, 6, 4, 16)])
def test_shapes_train_eval(kind, shape):
    out = train_and_eval(module(channels=16, partition=kind, partition_size=2, dim_head=8), rand(*shape))
    assert out.shape == shape


@pytest.mark.parametrize("kind", ["block", "grid"])
def test_gradcheck(kind):
    m = module(channels=8, partition=kind, partition_size=2, dim_head=4, head_first=kind == "grid")
    gradcheck(m, rand(1, 4, 2, 8))


def test_sizes_that_are_not_multiples_are_refused():
    with pytest.raises(ValueError, match="multiples"):
        module(channels=8, partition_size=3, dim_head=4)(rand(1, 6, 4, 8))


@pytest.mark.parametrize("kind", ["block", "grid"])
def test_partition_round_trip_and_windows(kind):
    x = rand(2, 6, 9, 5)
    w = partition(x, 3, kind)
    assert w.shape == (2, 2, 3, 9, 5)
    torch.testing.assert_close(unpartition(w, 3, kind), x)
    for a in range(2):
        for b in range(3):
            for i in range(3):
                for j in range(3):
                    r, c = (a * 3 + i, b * 3 + j) if kind == "block" else (i * 2 + a, j * 3 + b)
                    torch.testing.assert_close(w[:, a, b, i * 3 + j], x[:, r, c])


def reach(m, shape, r, c):
    """The output positions that change when token (r, c) changes."""
    x = rand(*shape)
    y = x.clone()
    y[:, r, c] += 1.0
    with torch.no_grad():
        d = (m(y) - m(x)).abs().sum(dim=(0, 3))
    return {(i, j) for i in range(shape[1]) for j in range(shape[2]) if d[i, j] > 1e-12}


def test_block_attention_is_local():
    m = module(channels=8, partition="block", partition_size=2, dim_head=4).eval()
    assert reach(m, (1, 6, 4, 8), 3, 2) == {(2, 2), (2, 3), (3, 2), (3, 3)}


def test_grid_attention_is_sparse_and_global():
    m = module(channels=8, partition="grid", partition_size=2, dim_head=4).eval()
    # H / G = 3, W / G = 2: token (3, 2) shares its window with the tokens 3 rows, 2 columns apart
    assert reach(m, (1, 6, 4, 8), 3, 2) == {(0, 0), (0, 2), (3, 0), (3, 2)}


def test_bias_depends_on_relative_offsets_only():
    p = 3
    idx = relative_bias_index(p)
    rows = {}
    for n in range(p * p):
        for k in range(p * p):
            off = (n // p - k // p, n % p - k % p)
            assert rows.setdefault(off, int(idx[n, k])) == int(idx[n, k])
    assert len(rows) == (2 * p - 1) ** 2 == len(set(rows.values()))


def test_one_window_written_out():
    """Attn(X) = softmax(Q K^T / sqrt(d) + B) V per head, heads concatenated, output projection."""
    m = module(channels=8, partition="block", partition_size=2, dim_head=4, head_first=False).eval()
    x = rand(1, 2, 2, 8)
    tokens = x.reshape(4, 8)
    qkv = tokens @ m.qkv.weight.T + m.qkv.bias
    heads = []
    for h in range(2):
        q, k, v = (qkv[:, s * 8 + h * 4 : s * 8 + h * 4 + 4] for s in range(3))
        logits = torch.empty(4, 4, dtype=torch.float64)
        for n in range(4):
            for j in range(4):
                dy, dx = n // 2 - j // 2, n % 2 - j % 2
                bias = m.relative_position_bias_table[(dy + 1) * 3 + (dx + 1), h]
                logits[n, j] = (q[n] * k[j]).sum() / 2.0 + bias
        heads.append(logits.softmax(-1) @ v)
    out = torch.cat(heads, dim=1) @ m.proj.weight.T + m.proj.bias
    with torch.no_grad():
        torch.testing.assert_close(m(x).reshape(4, 8), out)
