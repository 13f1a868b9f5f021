"""Lowering writes a ReLU into its operand (`runtime.relu_fresh`, eager only) exactly where nothing else can see
the operand: a conv, linear or norm layer's output or a sum, read by that ReLU alone and no output."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

import attndsl
from attndsl import runtime
from tests.helpers import spec_text

G = """
conv = conv2d(channels, channels, 3, padding=1)
bn = batchnorm(channels)
"""

REWRITTEN = {
    "conv_bn": "y = relu(bn(conv(x)))",
    "conv": "y = relu(conv(x)) * 2",
    "sum": "y = relu(conv(x) + x)",
}
KEPT = {
    "input": "y = relu(x)",  # the caller's tensor
    "read_twice": "u = bn(conv(x))\ny = relu(u) + u",  # u is read after the relu
    "output": "u = bn(conv(x))\ny = relu(u)\nz = u",  # u is returned
    "view": "y = relu(rearrange(conv(x), 'b c h w -> b c (h w)'))",  # a view's base could be read
    "sigmoid": "y = relu(sigmoid(conv(x)))",  # sigmoid's backward reads its result
    "scaled": "y = relu(conv(x) * 2)",  # a product: not in the list
}


def _build(tmp_path, f, outputs="[y]"):
    path = tmp_path / "inline.yaml"
    path.write_text(spec_text(f, g=G, outputs=outputs))
    torch.manual_seed(0)
    return attndsl.build(str(path))


def _fresh_nodes(m):
    return [n for n in m.graph.nodes if n.target is runtime.relu_fresh]


@pytest.mark.parametrize("name", list(REWRITTEN))
def test_relu_of_a_private_value_is_written_in_place(tmp_path, name):
    m = _build(tmp_path, REWRITTEN[name])
    assert m.meta["relu_fresh"] == 1 and len(_fresh_nodes(m)) == 1
    assert not any(n.target is torch.relu for n in m.graph.nodes)


@pytest.mark.parametrize("name", list(KEPT))
def test_relu_stays_out_of_place_where_its_operand_is_seen(tmp_path, name):
    m = _build(tmp_path, KEPT[name], outputs="[y, z]" if name == "output" else "[y]")
    assert m.meta["relu_fresh"] == 0 and not _fresh_nodes(m)
    assert any(n.target is torch.relu for n in m.graph.nodes)  # the relu is there, out of place


class _Ops(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("train", [False, True])
def test_eager_writes_in_place_and_matches_the_out_of_place_result(tmp_path, train):
    m = _build(tmp_path, REWRITTEN["conv_bn"]).train(train)
    x = torch.randn(2, 8, 5, 6, requires_grad=True)
    with _Ops() as ops:
        y = m(x)
    assert "relu_" in ops.names and "relu" not in ops.names
    # the same block computed out of place by hand, same weights
    want = torch.relu(m.bn(m.conv(x)))
    torch.testing.assert_close(y, want)
    (gy,) = torch.autograd.grad(y.square().sum(), x)
    (gw,) = torch.autograd.grad(want.square().sum(), x)
    torch.testing.assert_close(gy, gw)


def test_traces_and_exports_stay_out_of_place(tmp_path):
    m = _build(tmp_path, REWRITTEN["conv_bn"]).eval()
    x = torch.randn(2, 8, 5, 6)
    traced = torch.jit.trace(m, x)
    assert "aten::relu_" not in str(traced.graph) and "aten::relu" in str(traced.graph)
    exported = torch.export.export(m, (x,))
    targets = {str(n.target) for n in exported.graph.nodes}
    assert "aten.relu.default" in targets and "aten.relu_.default" not in targets
    torch.testing.assert_close(exported.module()(x), m(x))
