"""vit against tests/reference/vit.py: ViT-B/16's block scaled down, depth, class token, norms, GELU forms."""

import pytest

import attndsl
from tests.oracle import check_against_reference, transfer
from tests.reference.vit import ViT

SMALL = {"channels": 3, "image_size": 32, "patch_size": 8, "hidden_size": 24, "num_heads": 4, "mlp_dim": 40}
SHAPES = [  # the spec fixes the input to image_size x image_size
    {"x": [2, 3, 32, 32]},
    {"x": [1, 3, 32, 32]},  # batch 1
    {"x": [3, 3, 32, 32]},
]


def key_map(depth):
    """Spec `ln1.i`, `query.i`... -> reference `blocks.i.ln1`, `blocks.i.query`..."""
    return {
        f"{layer}.{i}.{k}": f"blocks.{i}.{layer}.{k}"
        for i in range(depth)
        for k in ("weight", "bias")
        for layer in ("ln1", "query", "key", "value", "out", "ln2", "fc1", "fc2")
    }


def reference_for(block):
    """The reference at block's parameters, with its weights (also benchmarks/realsize.py's)."""
    p = block.meta["compiled"].params
    ref = ViT(**p)
    transfer(block, ref, key_map(p["depth"]))
    return ref


@pytest.mark.parametrize(
    "params",
    [
        {},  # defaults: class token, final norm, tanh GELU
        {"depth": 2, "gelu_approximate": "none"},  # two blocks, exact GELU
        {"cls_token": False, "final_norm": False, "num_heads": 1},
        {"patch_size": 5, "image_size": 20, "ln_eps": 1e-5, "num_heads": 6},  # 4 x 4 grid of 5 x 5 patches
        {"image_size": 35},  # odd: the VALID patch conv crops to the 4 x 4 grid's 32 x 32 pixels
    ],
)
def test_matches_reference(params):
    p = {**SMALL, **params}
    side = p["image_size"]
    shapes = SHAPES if side == 32 else [{"x": [2, 3, side, side]}, {"x": [1, 3, side, side]}]
    check_against_reference("vit", p, reference_for, shapes, key_map=key_map(p.get("depth", 1)))


def test_attention_is_fused_and_defaults_are_vit_b16():
    c = attndsl.compile_spec("vit", {"channels": 3})
    assert c.stats["fuse_attention"]["softmax_attention"] == 1  # one SDPA node per block
    assert attndsl.compile_spec("vit", {**SMALL, "depth": 3}).stats["fuse_attention"]["softmax_attention"] == 3
    assert not any(c.graph.node(n)["op"] == "softmax" for n in c.graph.order())
    m = attndsl.build("vit", channels=3)
    assert m.embedding.weight.shape == (768, 3, 16, 16)
    assert m.pos_embedding.shape == (1, 14 * 14 + 1, 768)
    assert m.get_submodule("fc1.0").weight.shape == (3072, 768)
    assert m.get_submodule("ln1.0").eps == 1e-6
