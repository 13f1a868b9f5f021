"""non_local against tests/reference/non_local.py, at 1-D, 2-D and 3-D inputs, every variant."""

import pytest

import attndsl
from tests.oracle import check_against_reference
from tests.reference.non_local import NonLocal

SHAPES = [
    {"x": [2, 8, 7, 9]},  # 2-D, odd and non-square: pooling floors 7x9 to 3x4
    {"x": [1, 8, 11]},  # 1-D, batch 1
    {"x": [2, 8, 3, 5, 4]},  # 3-D video: time is not pooled
]


@pytest.mark.parametrize(
    "params",
    [
        {},  # official defaults
        {"sub_sample": False},
        {"bn_layer": False},
        {"use_scale": False},  # the paper's unscaled logits
        {"inter_channels": 3, "sub_sample": False, "use_scale": False, "bn_layer": False},
    ],
)
def test_matches_reference(params):
    check_against_reference("non_local", {"channels": 8, **params}, NonLocal(8, **params), SHAPES)


def test_softmax_attention_is_fused():
    for use_scale in (True, False):
        c = attndsl.compile_spec("non_local", {"channels": 8, "use_scale": use_scale})
        ops = [c.graph.node(n)["op"] for n in c.graph.order()]
        assert ops.count("attention") == 1 and "softmax" not in ops and "matmul" not in ops
        scale = next(c.graph.node(n)["attrs"]["scale"] for n in c.graph.order() if c.graph.node(n)["op"] == "attention")
        assert scale == pytest.approx(4**-0.5 if use_scale else 1.0)


def test_defaults_and_identity_start():
    import torch

    m = attndsl.build("non_local", channels=16)
    assert m.theta.weight.shape == (8, 16)  # inter_channels = C / 2
    assert torch.equal(m.bn.weight, torch.zeros(16))  # zero BN gamma: z = x at the start
    x = torch.randn(2, 16, 5, 6)
    torch.testing.assert_close(m(x), x)
    assert "bn" not in dict(attndsl.build("non_local", channels=16, bn_layer=False).named_modules())
