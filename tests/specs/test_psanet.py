"""psanet against tests/reference/psanet.py: bi-directional, single branches, compact, cropped masks, shrink factors.

The state dicts are identical (official nn.Sequential numbering) except the spec's constant PSAMask index
`idx`, which the reference keeps as a non-persistent buffer.
"""

import pytest

import attndsl
from tests.oracle import check_against_reference, transfer
from tests.reference.psanet import PSANet

KEYS = {"idx": None}


def reference_for(block):
    """The reference at block's parameters, with its weights (also benchmarks/realsize.py's)."""
    p = dict(block.meta["compiled"].params)
    p["feat_size"] = tuple(p["feat_size"])
    p["mask_size"] = tuple(p["mask_size"]) or None  # the spec's [] is the official None: the whole map
    p["normalization_factor"] = p["normalization_factor"] or None  # the spec's 0 is the official None: the mask size
    ref = PSANet(**p)
    transfer(block, ref, KEYS)
    return ref


@pytest.mark.parametrize(
    "params",
    [
        {},  # official: bi, shrink 2, full masks, softmax
        {"psa_type": "collect"},
        {"psa_type": "distribute", "normalization_factor": 0.0},  # divide by the mask size (official None)
        {"compact": True},
        {"compact": True, "psa_type": "distribute", "psa_softmax": False, "normalization_factor": 3.0},
        {"mask_size": [5, 7]},  # windows smaller than the map: zeros outside
        {"shrink_factor": 1, "mask_size": [3, 3]},
        {"shrink_factor": 3, "psa_type": "collect"},
    ],
)
def test_matches_reference(params):
    feat = (9, 11)  # odd, non-square; 5 x 6 after shrink 2
    p = {"channels": 6, "mid_channels": 4, "feat_size": list(feat), **params}
    check_against_reference(
        "psanet", p, reference_for, [{"x": [2, 6, *feat]}, {"x": [1, 6, *feat]}, {"x": [3, 6, *feat]}], key_map=KEYS
    )


def test_defaults_are_the_semseg_config():
    m = attndsl.build("psanet", channels=8, mid_channels=4)
    assert m.get_submodule("attention.3").weight.shape == (59 * 59, 4, 1, 1)  # 59 x 59 masks on a 30 x 30 map
    assert m.idx.shape == (900, 900)
    assert m.get_submodule("proj.0").weight.shape == (8, 8, 1, 1)  # bi: 2 mid -> C
