"""genet against tests/reference/genet.py: GE-theta^- / GE-theta / GE-theta^+, global and local extents,
odd sizes (ceil-mode pooling, stride-2 convs)."""

import pytest
import torch

import attndsl
from tests.oracle import check_against_reference
from tests.reference.genet import GENet

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def key_map(extent):
    """Spec gather layers -> the reference's `gather` Sequential (ReLUs between the conv + BN pairs)."""
    if extent == 0:
        return {"gather_conv.weight": "gather.0.weight", **{f"gather_bn.{k}": f"gather.1.{k}" for k in BN_KEYS}}
    out = {}
    for i in range(extent.bit_length() - 1):
        out[f"gather_conv.{i}.weight"] = f"gather.{3 * i}.weight"
        out.update({f"gather_bn.{i}.{k}": f"gather.{3 * i + 1}.{k}" for k in BN_KEYS})
    return out


LOCAL_SHAPES = [
    {"x": [2, 8, 7, 9]},  # odd, non-square: partial windows
    {"x": [1, 8, 13, 6]},  # batch 1
    {"x": [2, 8, 3, 16]},  # smaller than the extent along H
]


@pytest.mark.parametrize(
    "params",
    [
        {"extent": 2},  # GE-theta, E2
        {"extent": 4},
        {"extent": 8, "use_mlp": True, "reduction": 4},  # GE-theta^+, E8
        {"extent": 2, "extra_params": False},  # GE-theta^-, E2
        {"extent": 8, "extra_params": False},
        {"extent": 0, "extra_params": False},  # GE-theta^-, global
    ],
)
def test_local_and_parameter_free(params):
    p = {"channels": 8, **params}
    check_against_reference("genet", p, GENet(**p), LOCAL_SHAPES, key_map=key_map(params["extent"]))


@pytest.mark.parametrize(
    "params",
    [
        {},  # GE-theta, global (official default)
        {"use_mlp": True, "reduction": 2},  # GE-theta^+, global
    ],
)
def test_global_parametric(params):
    # the depthwise kernel covers the whole map: the input size is fixed to spatial_size
    p = {"channels": 8, "spatial_size": [5, 7], **params}
    check_against_reference("genet", p, GENet(**p), [{"x": [2, 8, 5, 7]}, {"x": [3, 8, 5, 7]}], key_map=key_map(0))
    check_against_reference("genet", p, GENet(**p), [{"x": [1, 8, 5, 7]}], key_map=key_map(0), modes=("eval",))


def test_defaults_are_ge_theta():
    m = attndsl.build("genet", channels=64)
    assert m.gather_conv.weight.shape == (64, 1, 56, 56) and m.gather_conv.groups == 64
    assert m.gather_conv.bias is None and m.gather_bn.num_features == 64
    p = attndsl.build("genet", channels=64, use_mlp=True)
    assert p.fc1.weight.shape == (4, 64, 1, 1) and torch.equal(p.fc1.bias, torch.zeros(4))
    assert not list(attndsl.build("genet", channels=64, extra_params=False).parameters())
