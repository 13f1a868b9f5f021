"""rga against tests/reference/rga.py: RGA-SC, RGA-S and RGA-C alone, other ratios and sizes.

The state dicts are identical (official nn.Sequential numbering), so no key map is needed.
"""

import pytest

import attndsl
from tests.oracle import check_against_reference, transfer
from tests.reference.rga import RGA


def reference_for(block):
    """The reference at block's parameters, with its weights (also benchmarks/realsize.py's)."""
    p = dict(block.meta["compiled"].params)
    ref = RGA(p.pop("channels"), (p.pop("height"), p.pop("width")), **p)
    transfer(block, ref)
    return ref


@pytest.mark.parametrize(
    "params",
    [
        {},  # RGA-SC, ratios 8
        {"use_channel": False},  # RGA-S
        {"use_spatial": False},  # RGA-C
        {"cha_ratio": 4, "spa_ratio": 2, "down_ratio": 3},
    ],
)
def test_matches_reference(params):
    h, w = 9, 15  # odd, non-square: N = 135, N/8 = 16
    p = {"channels": 64, "height": h, "width": w, **params}
    check_against_reference("rga", p, reference_for, [{"x": [2, 64, h, w]}, {"x": [1, 64, h, w]}, {"x": [3, 64, h, w]}])


def test_small_feature_map():
    # 4 x 5 map: N / spa_ratio = 5, down_ratio 2 so that W keeps a hidden unit
    p = {"channels": 16, "height": 4, "width": 5, "cha_ratio": 2, "spa_ratio": 4, "down_ratio": 2}
    ref = RGA(16, 20, cha_ratio=2, spa_ratio=4, down_ratio=2)  # the reference also takes N = H*W
    check_against_reference("rga", p, ref, [{"x": [2, 16, 4, 5]}, {"x": [1, 16, 4, 5]}])


def test_defaults_are_the_official_codes():
    m = attndsl.build("rga", channels=256, height=64, width=32)
    assert m.get_submodule("gg_spatial.0").weight.shape == (256, 2 * 2048, 1, 1)  # 2N -> N/8
    assert m.get_submodule("W_channel.0").weight.shape == (4, 33, 1, 1)  # 1 + C/8 -> (1 + C/8)/8
    assert m.get_submodule("theta_spatial.0").bias is None
