"""fcanet against tests/reference/fcanet.py: DCT pooling at and away from the DCT size, every table."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.fcanet import MultiSpectralAttention

C = 64
SHAPES = [
    {"x": [2, C, 7, 7]},  # exactly the DCT size: no pooling
    {"x": [1, C, 9, 11]},  # batch 1, odd, non-square: adaptive pooling first
    {"x": [3, C, 14, 5]},
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # top16, 7x7
        {"freq_sel_method": "low4", "reduction": 8},
        {"freq_sel_method": "bot32", "dct_h": 14, "dct_w": 7},  # scaled indices, non-square DCT
        {"freq_sel_method": "top1", "dct_h": 5, "dct_w": 9},  # sizes below 7 scale indices by 0
    ],
)
def test_matches_reference(params):
    check_against_reference("fcanet", {"channels": C, **params}, MultiSpectralAttention(C, **params), SHAPES)


@pytest.mark.parametrize("method", [f"{k}{n}" for k in ("top", "low", "bot") for n in (1, 2, 4, 8, 16, 32)])
@pytest.mark.parametrize("dct", [(7, 7), (14, 28), (9, 11)])
def test_dct_bank_is_the_references(method, dct):
    # check_against_reference copies buffers into the reference, so the bank is compared here
    built = attndsl.build("fcanet", channels=C, freq_sel_method=method, dct_h=dct[0], dct_w=dct[1])
    ref = MultiSpectralAttention(C, freq_sel_method=method, dct_h=dct[0], dct_w=dct[1])
    assert built.dct_weight.dtype == ref.dct_weight.dtype
    torch.testing.assert_close(built.dct_weight, ref.dct_weight, atol=0, rtol=0)


def test_channels_must_split_over_the_frequencies():
    with pytest.raises(attndsl.AttnDSLError, match="split evenly"):
        attndsl.build("fcanet", channels=40, freq_sel_method="top16")
