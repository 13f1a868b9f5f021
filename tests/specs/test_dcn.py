"""dcn against tests/reference/dcn.py: v1 and v2, strides, dilation, deformable and conv groups, bias."""

import pytest
import torch
import torch.nn.functional as F

import attndsl
from tests.oracle import check_against_reference
from tests.reference.dcn import DeformableConv2d

SHAPES = [
    {"x": [2, 8, 7, 9]},  # odd, non-square
    {"x": [1, 8, 5, 4]},  # batch 1
    {"x": [3, 8, 6, 6]},
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # v1: 3x3, stride 1, padding 1
        {"modulated": True},  # v2
        {"out_channels": 6, "deform_groups": 2, "modulated": True, "bias": True},
        {"stride": 2, "padding": 2, "dilation": 2, "deform_groups": 4},  # official res5-style: dg 4, dilation 2
        {"out_channels": 4, "kernel_size": 5, "padding": 1, "groups": 2, "deform_groups": 2},
        {"kernel_size": 1, "padding": 0, "stride": 2, "modulated": True},
    ],
)
def test_matches_reference(params):
    p = {"channels": 8, **params}
    check_against_reference("dcn", p, DeformableConv2d(**p), SHAPES)


@pytest.mark.parametrize("modulated", [False, True])
def test_starts_as_the_plain_conv(modulated):
    torch.manual_seed(0)
    m = attndsl.build("dcn", channels=8, out_channels=6, modulated=modulated).double()
    assert m.conv_offset.weight.abs().sum() == 0 and m.conv_offset.bias.abs().sum() == 0
    x = torch.randn(2, 8, 7, 9, dtype=torch.float64)
    plain = F.conv2d(x, m.conv.weight, padding=1)
    torch.testing.assert_close(m(x), plain * (0.5 if modulated else 1.0))


def test_defaults():
    m = attndsl.build("dcn", channels=16)
    assert m.conv.weight.shape == (16, 16, 3, 3) and m.conv.bias is None
    assert m.conv_offset.weight.shape == (18, 16, 3, 3)
    assert attndsl.build("dcn", channels=16, modulated=True, deform_groups=4).conv_offset.weight.shape == (
        108,
        16,
        3,
        3,
    )
