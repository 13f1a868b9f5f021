"""axial_attention against tests/reference/axial_attention.py: head counts, non-square spans,
out_channels, stride.

The spec's ModuleLists `name.0` / `name.1` are the official hight_block / width_block; its
constant relative position indices are the reference's on-the-fly index (no buffer).
"""

import pytest

import attndsl
from tests.oracle import check_against_reference, transfer
from tests.reference.axial_attention import AxialAttention

LAYERS = ("qkv_transform.{}.weight", "relative.{}") + tuple(
    f"{bn}.{{}}.{s}"
    for bn in ("bn_qkv", "bn_similarity", "bn_output")
    for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
)


def key_map():
    keys = {"relative_position_index": None, "relative_position_index_1": None}
    for i, block in enumerate(("hight_block", "width_block")):
        for k in LAYERS:
            name = k.format(i)
            keys[name] = f"{block}.{name.replace(f'.{i}', '', 1)}"
    return keys


def reference_for(block):
    """The reference at block's parameters, with its weights (also benchmarks/realsize.py's)."""
    ref = AxialAttention(**block.meta["compiled"].params)
    transfer(block, ref, key_map())
    return ref


@pytest.mark.parametrize(
    "params, size",
    [
        ({"channels": 16, "heads": 2}, (6, 5)),  # non-square spans
        ({"channels": 16}, (4, 4)),  # official 8 heads, 2 planes each
        ({"channels": 12, "out_channels": 8, "heads": 1}, (3, 7)),  # C -> out, one head
        ({"channels": 8, "heads": 2, "stride": 2}, (6, 4)),  # average pool after the width block
        ({"channels": 6, "out_channels": 12, "heads": 3, "stride": 3}, (7, 5)),  # pooling floors 7 and 5
    ],
)
def test_matches_reference(params, size):
    p = {**params, "span_h": size[0], "span_w": size[1]}
    c = params["channels"]
    check_against_reference(
        "axial_attention",
        p,
        reference_for,
        [{"x": [2, c, *size]}, {"x": [1, c, *size]}, {"x": [3, c, *size]}],
        key_map=key_map(),
    )


def test_defaults_are_the_official():
    sd = attndsl.build("axial_attention", channels=64).state_dict()
    assert sd["relative.0"].shape == (16, 111)  # 8 heads of 8 planes, span 56
    assert sd["qkv_transform.0.weight"].shape == (128, 64, 1, 1) and "qkv_transform.0.bias" not in sd
    assert sd["bn_similarity.1.weight"].shape == (24,)


def test_odd_head_width_is_refused():
    with pytest.raises(attndsl.AttnDSLError):
        attndsl.build("axial_attention", channels=12, heads=4, span_h=4)  # 3 planes a head: not even
