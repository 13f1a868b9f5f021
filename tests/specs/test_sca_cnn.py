"""sca_cnn against tests/reference/sca_cnn.py: every order, with and without the official rescaling."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.sca_cnn import SCACNN

SHAPES = [
    {"x": [2, 6, 5, 7], "h": [2, 10]},  # odd, non-square
    {"x": [1, 6, 3, 3], "h": [1, 10]},  # batch 1
    {"x": [3, 6, 9], "h": [3, 10]},  # 1-D
    {"x": [2, 6, 2, 3, 4], "h": [2, 10]},  # 3-D
]


@pytest.mark.parametrize("rescale", [True, False])
@pytest.mark.parametrize("order", ["channel_spatial", "spatial_channel", "channel", "spatial"])
def test_matches_reference(order, rescale):
    params = {"hidden_size": 10, "attn_dim": 4, "order": order, "rescale": rescale}
    check_against_reference("sca_cnn", {"channels": 6, **params}, SCACNN(6, **params), SHAPES)


def test_defaults_are_the_official_codes():
    m = attndsl.build("sca_cnn", channels=8)
    assert m.W_hc.weight.shape == (512, 1000) and m.W_hc.bias is None  # k = 512, 1000 LSTM units
    assert m.W_s.weight.shape == (512, 8)
    only_channel = dict(attndsl.build("sca_cnn", channels=8, order="channel").named_modules())
    assert "W_c" in only_channel and "W_s" not in only_channel
