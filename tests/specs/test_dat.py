"""dat against tests/reference/dat.py (the official CVPR 2022 DAttentionBaseline's semantics, its own
bilinear sampler): offset groups, heads, strides that do and do not divide the map, the three
offset_range_factor cases, the relative position bias table and the depthwise-conv form."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference, transfer
from tests.reference.dat import DAttentionBaseline, key_map

SIZES = [(7, 9), (6, 6), (5, 8), (1, 4)]  # H != W, strides that do not divide, a one-row map
PP_SIZES = [(7, 9), (6, 6), (5, 8), (4, 5)]  # DAT++ divides by grid size - 1: no grid of one row


def shapes_for(params):
    c = params["channels"]
    sizes = PP_SIZES if params.get("version") == "dat_pp" else SIZES
    if params.get("use_pe", True) and not params.get("dwc_pe", False):
        h, w = params["fmap_size"]
        return [{"x": [2, c, h, w]}, {"x": [1, c, h, w]}]
    return [{"x": [2 if i % 2 == 0 else 1, c, h, w]} for i, (h, w) in enumerate(sizes)]


def reference_for(block):
    """The reference at block's parameters, with its weights (also benchmarks/realsize.py's)."""
    p = block.meta["compiled"].params
    ref = DAttentionBaseline(**{k: (tuple(v) if k == "fmap_size" else v) for k, v in p.items()})
    transfer(block, ref, key_map)
    return ref


VARIANTS = [
    {"channels": 32, "heads": 4, "groups": 2, "stride": 2, "ksize": 3, "use_pe": False},
    {"channels": 24, "heads": 6, "groups": 3, "stride": 1, "ksize": 5, "use_pe": False},  # DAT-T stage 3 form
    {"channels": 16, "heads": 2, "groups": 1, "stride": 3, "ksize": 3, "use_pe": False},
    {"channels": 16, "heads": 4, "groups": 4, "stride": 2, "ksize": 1, "use_pe": False},  # one head per group
    {"channels": 16, "heads": 2, "groups": 2, "stride": 2, "ksize": 4, "use_pe": False},  # even kernel
    {
        "channels": 16,
        "heads": 4,
        "groups": 2,
        "stride": 1,
        "ksize": 3,
        "use_pe": False,
        "offset_range_factor": 0.0,
    },  # raw offsets
    {
        "channels": 16,
        "heads": 4,
        "groups": 2,
        "stride": 2,
        "ksize": 3,
        "use_pe": False,
        "offset_range_factor": -1.0,
    },  # tanh(position)
    {
        "channels": 16,
        "heads": 4,
        "groups": 2,
        "stride": 2,
        "ksize": 3,
        "offset_range_factor": 5.0,
        "use_pe": True,
        "dwc_pe": True,
    },
    {"channels": 24, "heads": 6, "groups": 3, "stride": 1, "ksize": 5, "fmap_size": [5, 7]},  # bias table
    {"channels": 16, "heads": 4, "groups": 2, "stride": 2, "ksize": 3, "fmap_size": [7, 4]},
    {"channels": 8, "heads": 2, "groups": 1, "stride": 3, "ksize": 3, "fmap_size": [4, 5], "offset_range_factor": -1.0},
    {"channels": 16, "heads": 4, "groups": 4, "stride": 1, "ksize": 3, "fmap_size": [3, 3], "offset_range_factor": 0.0},
    # DAT++ (the 2023 rewrite): grids over size - 1, clamped positions for s < 0, padding 0 when ksize == stride
    {
        "channels": 32,
        "heads": 8,
        "groups": 4,
        "stride": 2,
        "ksize": 5,
        "offset_range_factor": -1.0,
        "fmap_size": [7, 6],
        "version": "dat_pp",
    },  # DAT++-T stage 3 form
    {
        "channels": 16,
        "heads": 4,
        "groups": 2,
        "stride": 2,
        "ksize": 2,
        "offset_range_factor": -1.0,
        "use_pe": False,
        "version": "dat_pp",
    },
    {
        "channels": 16,
        "heads": 4,
        "groups": 2,
        "stride": 1,
        "ksize": 3,
        "offset_range_factor": 3.0,
        "fmap_size": [5, 6],
        "version": "dat_pp",
    },
    {
        "channels": 16,
        "heads": 2,
        "groups": 2,
        "stride": 2,
        "ksize": 3,
        "offset_range_factor": 0.0,
        "use_pe": False,
        "version": "dat_pp",
    },  # s == 0: no offsets
    {"channels": 16, "heads": 4, "groups": 1, "stride": 2, "ksize": 3, "dwc_pe": True, "version": "dat_pp"},
]


@pytest.mark.parametrize("params", VARIANTS)
def test_matches_reference(params):
    check_against_reference("dat", params, reference_for, shapes_for(params), key_map=key_map)


def test_maps_are_the_references():
    params = {"channels": 16, "heads": 4, "groups": 2, "stride": 2, "ksize": 3, "fmap_size": [5, 6]}
    built, ref = check_against_reference(
        "dat",
        params,
        DAttentionBaseline(16, 4, 2, 2, ksize=3, fmap_size=(5, 6)),
        [{"x": [2, 16, 5, 6]}],
        key_map=key_map,
        modes=("eval",),
    )
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    with attndsl.capture(built) as maps:
        built(x)
    ref(x)
    torch.testing.assert_close(maps[""]["a"], ref.last_attn)
    pos = maps[""]["pos"].reshape(2, 2, 3, 3, 2)  # [(B G), Hk, Wk, (x, y)]
    for g, (py, px) in enumerate(ref.last_pos):
        torch.testing.assert_close(pos[:, g, ..., 0], px)
        torch.testing.assert_close(pos[:, g, ..., 1], py)


def test_defaults_are_dat_t_stage_3():
    p = attndsl.pipeline.load("dat").resolve(channels=384)
    assert (p["heads"], p["groups"], p["stride"], p["offset_range_factor"], p["ksize"]) == (12, 3, 1, 2.0, 5)
    assert p["use_pe"] and not p["dwc_pe"] and list(p["fmap_size"]) == [14, 14]
    m = attndsl.build("dat", channels=384)
    sd = m.state_dict()
    assert sd["rpe_table"].shape == (12, 27, 27)
    assert sd["offset_dw.weight"].shape == (128, 1, 5, 5) and sd["offset_proj.weight"].shape == (2, 128, 1, 1)
    assert "offset_proj.bias" not in sd and sd["proj_q.bias"].shape == (384,)
    assert m(torch.randn(1, 384, 14, 14)).shape == (1, 384, 14, 14)
    with pytest.raises(ValueError):
        m(torch.randn(1, 384, 14, 15))  # the bias table fixes the map size


def test_any_size_without_the_table():
    m = attndsl.build("dat", channels=64, use_pe=False)
    for h, w in ((14, 14), (9, 17), (1, 1)):
        assert m(torch.randn(1, 64, h, w)).shape == (1, 64, h, w)
