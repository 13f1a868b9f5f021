"""Tests of the DAT reference (tests/reference/dat.py): shapes, train/eval, float64 gradcheck, its
bilinear sampler against torch's grid_sample, and the paper's properties (offsets bounded by the
range factor, zero offsets sample the reference points, the bias read off the table in plain loops)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.reference.dat import DAttentionBaseline, bilinear
from tests.reference.harness import gradcheck, train_and_eval

torch.set_num_threads(1)


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def randomize_(m, seed=0, std=0.5):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
    return m


@pytest.mark.parametrize(
    "kw,hw",
    [
        ({"channels": 16, "heads": 4, "groups": 2, "stride": 2, "ksize": 3, "use_pe": False}, (7, 9)),
        ({"channels": 16, "heads": 2, "groups": 1, "stride": 3, "ksize": 5, "use_pe": False}, (1, 5)),
        ({"channels": 24, "heads": 6, "groups": 3, "stride": 1, "ksize": 5, "fmap_size": (5, 4)}, (5, 4)),
        ({"channels": 16, "heads": 4, "groups": 4, "stride": 2, "ksize": 3, "dwc_pe": True}, (6, 3)),
        (
            {
                "channels": 8,
                "heads": 2,
                "groups": 2,
                "stride": 2,
                "ksize": 3,
                "offset_range_factor": -1,
                "fmap_size": (4, 4),
            },
            (4, 4),
        ),
    ],
)
def test_shapes_train_eval(kw, hw):
    m = DAttentionBaseline(**kw).double()
    y = train_and_eval(m, rand(2, kw["channels"], *hw))
    assert y.shape == (2, kw["channels"], *hw)


def test_defaults_are_dat_t_stage_3():
    m = DAttentionBaseline(384)
    assert (m.heads, m.groups, m.hc, m.factor) == (12, 3, 32, 2.0)
    assert m.conv_offset[0].kernel_size == (5, 5) and m.conv_offset[0].stride == (1, 1)
    assert m.rpe_table.shape == (12, 27, 27)
    # official names, so an official checkpoint's attention entries load as they are
    assert {
        "proj_q.weight",
        "conv_offset.0.weight",
        "conv_offset.1.norm.weight",
        "conv_offset.3.weight",
        "rpe_table",
        "proj_out.bias",
    } <= set(m.state_dict())


def test_table_fixes_the_size():
    with pytest.raises(ValueError):
        DAttentionBaseline(8, 2, 1, fmap_size=(4, 4))(torch.randn(1, 8, 4, 5))


@pytest.mark.parametrize(
    "kw,hw",
    [
        ({"channels": 4, "heads": 2, "groups": 2, "stride": 2, "ksize": 3, "fmap_size": (3, 4)}, (3, 4)),
        (
            {
                "channels": 4,
                "heads": 2,
                "groups": 1,
                "stride": 1,
                "ksize": 3,
                "offset_range_factor": -1,
                "use_pe": False,
            },
            (3, 2),
        ),
        ({"channels": 4, "heads": 1, "groups": 1, "stride": 2, "ksize": 3, "dwc_pe": True}, (3, 3)),
    ],
)
def test_gradcheck(kw, hw):
    m = randomize_(DAttentionBaseline(**kw).double(), std=0.3)
    gradcheck(m, rand(1, kw["channels"], *hw))


def test_sampler_is_grid_sample_align_corners_zeros():
    img = rand(2, 3, 5, 7)
    gy, gx = rand(2, 4, 6, seed=1) * 0.8, rand(2, 4, 6, seed=2) * 0.8  # some outside [-1, 1]
    torch.testing.assert_close(bilinear(img, gy, gx), F.grid_sample(img, torch.stack([gx, gy], -1), align_corners=True))
    # the corners of [-1, 1] are the corner pixels' centres
    one = torch.tensor([[-1.0, 1.0]] * 2, dtype=torch.float64)
    out = bilinear(img, one, -one)
    torch.testing.assert_close(out[:, :, 0], img[:, :, 0, -1])
    torch.testing.assert_close(out[:, :, 1], img[:, :, -1, 0])


def test_offsets_are_bounded_by_the_range_factor():
    """Sec. 3.3: dp = s * tanh(.) / grid size, so each sample stays within s cells of its reference point."""
    m = randomize_(
        DAttentionBaseline(16, 4, 2, stride=2, ksize=3, offset_range_factor=3, use_pe=False).double(), std=3.0
    )
    m(rand(2, 16, 9, 7))
    hk, wk = 5, 4
    ry = (torch.arange(hk, dtype=torch.float64) + 0.5) * 2 / hk - 1
    rx = (torch.arange(wk, dtype=torch.float64) + 0.5) * 2 / wk - 1
    for py, px in m.last_pos:
        assert py.shape == (2, hk, wk)
        assert ((py - ry[:, None]).abs() <= 3 / hk + 1e-12).all()
        assert ((px - rx[None, :]).abs() <= 3 / wk + 1e-12).all()
        assert (py - ry[:, None]).abs().max() > 1 / hk  # the offsets are not trivially small


def test_zero_offsets_sample_the_reference_points():
    m = randomize_(DAttentionBaseline(8, 2, 2, stride=2, ksize=3, use_pe=False).double())
    with torch.no_grad():
        m.conv_offset[3].weight.zero_()
    x = rand(1, 8, 6, 4)
    y = m(x)
    for py, px in m.last_pos:
        torch.testing.assert_close(
            py[0], ((torch.arange(3.0, dtype=torch.float64) + 0.5) * 2 / 3 - 1)[:, None].expand(3, 2)
        )
        torch.testing.assert_close(px[0], ((torch.arange(2.0, dtype=torch.float64) + 0.5) - 1)[None, :].expand(3, 2))
    # the offset network no longer matters
    with torch.no_grad():
        m.conv_offset[0].weight.mul_(3)
    torch.testing.assert_close(m(x), y)


def test_attention_rows_are_distributions():
    m = randomize_(DAttentionBaseline(16, 4, 2, stride=2, ksize=3, fmap_size=(5, 6)).double())
    m(rand(2, 16, 5, 6))
    a = m.last_attn
    assert a.shape == (2, 4, 30, 9) and (a > 0).all()
    torch.testing.assert_close(a.sum(-1), torch.ones_like(a.sum(-1)))


def test_bias_written_out():
    """q = 0, so each head's attention is softmax of the relative position bias alone: the table at
    half the query-sample displacement, bilinear with align_corners=True, computed here pixel by pixel."""
    h, w = 2, 3
    m = randomize_(DAttentionBaseline(4, 2, 2, stride=1, ksize=3, fmap_size=(h, w)).double())
    with torch.no_grad():
        m.proj_q.weight.zero_(), m.proj_q.bias.zero_()
    m(rand(1, 4, h, w))
    table = m.rpe_table.detach()
    th, tw = 2 * h - 1, 2 * w - 1

    def lerp(t, y, x):  # t [th, tw] at normalised (y, x), zero outside
        fy, fx = (y + 1) / 2 * (th - 1), (x + 1) / 2 * (tw - 1)
        total = 0.0
        for iy in (math.floor(fy), math.floor(fy) + 1):
            for ix in (math.floor(fx), math.floor(fx) + 1):
                if 0 <= iy < th and 0 <= ix < tw:
                    total += (1 - abs(fy - iy)) * (1 - abs(fx - ix)) * t[iy, ix].item()
        return total

    for n in range(2):
        py, px = (p.detach()[0].reshape(-1) for p in m.last_pos[n])  # one head per group
        for i in range(h):
            for j in range(w):
                qy, qx = (i + 0.5) * 2 / h - 1, (j + 0.5) * 2 / w - 1
                bias = torch.tensor(
                    [lerp(table[n], (qy - py[s].item()) / 2, (qx - px[s].item()) / 2) for s in range(h * w)],
                    dtype=torch.float64,
                )
                torch.testing.assert_close(m.last_attn[0, n, i * w + j], torch.softmax(bias, 0))
