"""ocrnet against tests/reference/ocrnet.py: region counts, widths, the HRNet-OCR variants, dropout."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference, randomize, transfer
from tests.reference.ocrnet import OCRNet


def key_map():
    """Spec layers -> the reference's Sequential indices (ReLUs take the indices 2 and 5)."""
    parts = {
        "f_pixel_conv1": "f_pixel.0",
        "f_pixel_bn1": "f_pixel.1",
        "f_pixel_conv2": "f_pixel.3",
        "f_pixel_bn2": "f_pixel.4",
        "f_object_conv1": "f_object.0",
        "f_object_bn1": "f_object.1",
        "f_object_conv2": "f_object.3",
        "f_object_bn2": "f_object.4",
        "f_down_conv": "f_down.0",
        "f_down_bn": "f_down.1",
        "f_up_conv": "f_up.0",
        "f_up_bn": "f_up.1",
        "out_conv": "conv_bn_dropout.0",
        "out_bn": "conv_bn_dropout.1",
    }
    keys = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    return {f"{s}.{k}": f"{r}.{k}" for s, r in parts.items() for k in keys}


SHAPES = [
    {"x": [2, 16, 7, 9], "probs": [2, 5, 7, 9]},  # odd and non-square, K = 5
    {"x": [1, 16, 5, 4], "probs": [1, 3, 5, 4]},  # batch 1 (the region BNs see K values)
    {"x": [3, 16, 6, 1], "probs": [3, 2, 6, 1]},  # one column, K = 2
]


@pytest.mark.parametrize(
    "params",
    [
        {"key_channels": 8},  # official head, smaller
        {"key_channels": 6, "out_channels": 10, "scale": 2.5},
        {"key_channels": 8, "conv_bias": False, "gather_softmax_dim": "classes"},  # HRNet-OCR
    ],
)
def test_matches_reference(params):
    train = {"channels": 16, **params, "dropout": 0.0}  # dropout draws differ: train without it
    check_against_reference("ocrnet", train, OCRNet(**train), SHAPES, key_map=key_map())
    full = {"channels": 16, **params}  # default dropout 0.05, eval: the identity
    check_against_reference("ocrnet", full, OCRNet(**full), SHAPES, key_map=key_map(), modes=("eval",))


def test_dropout_matches_reference_under_one_seed():
    params = {"channels": 16, "key_channels": 8, "dropout": 0.5}
    built, ref = attndsl.build("ocrnet", **params).double(), OCRNet(**params).double()
    randomize(built)
    transfer(built, ref, key_map())
    built.train(), ref.train()
    x, p = torch.randn(2, 16, 5, 6, dtype=torch.float64), torch.randn(2, 4, 5, 6, dtype=torch.float64)
    outs = []
    for m in (built, ref):
        torch.manual_seed(7)
        outs.append(m(x, p))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-9, rtol=1e-7)
    dropped = (outs[0] == 0).flatten(2).all(dim=2)  # whole channels dropped (Dropout2d)
    assert dropped.any() and not dropped.all()


def test_defaults_are_the_official_heads():
    m = attndsl.build("ocrnet", channels=512)
    assert m.f_pixel_conv1.weight.shape == (256, 512, 1, 1) and m.f_pixel_conv1.bias is not None
    assert m.out_conv.weight.shape == (512, 1024, 1, 1)
    assert m.f_up_conv.weight.shape == (512, 256, 1, 1)
