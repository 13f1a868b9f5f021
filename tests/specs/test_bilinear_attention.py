"""bilinear_attention against tests/reference/bilinear_attention.py (2-D only)."""

import pytest

from tests.oracle import check_against_reference, transfer
from tests.reference.bilinear_attention import BilinearAttention

SHAPES = [
    {"x": [2, 0, 7, 9]},  # non-square, odd
    {"x": [3, 0, 4, 5]},
]
# the inner branch batch-normalises a 1x1 map: batch 1 only in eval mode
BATCH1 = [{"x": [1, 0, 5, 3]}]


def shapes_for(channels, shapes):
    return [{"x": [s["x"][0], channels, *s["x"][2:]]} for s in shapes]


def key_map(built):
    # phi_conv.weight -> phi.conv.weight, inner_bn.running_mean -> inner.bn.running_mean, ...
    return {k: k.replace("_", ".", 1) for k in built.state_dict()}


def reference_for(block):
    """The reference at block's parameters, with its weights (also benchmarks/realsize.py's)."""
    p = block.meta["compiled"].params
    ref = BilinearAttention(p["channels"], p["reduction"])
    transfer(block, ref, key_map(block))
    return ref


@pytest.mark.parametrize("channels,reduction", [(64, 16), (48, 8), (20, 4), (8, 16)])  # m = 4, 6, 5, 1
def test_matches_reference(channels, reduction):
    import attndsl

    params = {"channels": channels, "reduction": reduction}
    km = key_map(attndsl.build("bilinear_attention", **params))
    check_against_reference("bilinear_attention", params, reference_for, shapes_for(channels, SHAPES), key_map=km)
    check_against_reference(
        "bilinear_attention",
        params,
        reference_for,
        shapes_for(channels, BATCH1),
        key_map=km,
        modes=("eval",),
    )


def test_defaults_are_the_official_ones():
    import attndsl

    m = attndsl.build("bilinear_attention", channels=256)
    assert m.phi_conv.weight.shape == (16, 256, 1, 1)  # m = 256 // 16
    assert m.inner_conv.weight.shape == (256, 136, 1, 1)  # m(m+1)/2 pairs
    assert m.outer_conv.bias is not None
