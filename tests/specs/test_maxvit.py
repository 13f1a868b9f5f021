"""maxvit against tests/reference/maxvit.py and against timm's PartitionAttentionCl (its attention:
window/grid partition, AttentionCl with RelPosBias, reverse): block and grid partition, several
shapes, head counts and partition sizes, both qkv layouts, and the `convert` section loading timm's
AttentionCl."""

import pytest
import timm
import torch

import attndsl
from attndsl.checkpoints import from_module
from tests.oracle import check_against_reference, randomize
from tests.reference.maxvit import MaxViTAttention, TimmPartitionAttention, key_map, timm_key_map

PARAMS = [
    {"channels": 16, "partition_size": 2, "dim_head": 8},  # 2 heads
    {"channels": 24, "partition_size": 3, "dim_head": 8},  # 3 heads, P = 3
    {"channels": 16, "partition_size": 2, "dim_head": 16, "attn_bias": False},  # 1 head, no biases
    {"channels": 32, "partition_size": 2, "dim_head": 8, "head_first": False},  # 4 heads, TF layout
    {"channels": 12, "partition_size": 3, "dim_head": 4, "rel_pos_bias": False},  # no position bias
]


def shapes_for(p):
    s, c = p["partition_size"], p["channels"]
    return [{"x": [2, 2 * s, 3 * s, c]}, {"x": [1, s, s, c]}, {"x": [3, 3 * s, s, c]}]


@pytest.mark.parametrize("partition", ["block", "grid"])
@pytest.mark.parametrize("params", PARAMS)
def test_matches_reference(params, partition):
    p = {**params, "partition": partition}
    ref = MaxViTAttention(**p)
    check_against_reference("maxvit", p, ref, shapes_for(p), key_map=key_map(ref))


@pytest.mark.parametrize("partition", ["block", "grid"])
@pytest.mark.parametrize("params", PARAMS)
def test_matches_timm(params, partition):
    p = {**params, "partition": partition}
    ref = TimmPartitionAttention(**p)
    check_against_reference("maxvit", p, ref, shapes_for(p), key_map=timm_key_map(ref))


def test_block_and_grid_differ():
    """The two partitions are different functions of the same weights (a map of 2 x 2 windows)."""
    torch.manual_seed(0)
    blk = attndsl.build("maxvit", channels=16, partition_size=2, dim_head=8).double()
    grd = attndsl.build("maxvit", channels=16, partition_size=2, dim_head=8, partition="grid").double()
    randomize(blk)
    grd.load_state_dict(blk.state_dict())
    x = torch.randn(1, 4, 4, 16, dtype=torch.float64)
    assert not torch.allclose(blk(x), grd(x))
    one = torch.randn(1, 2, 2, 16, dtype=torch.float64)  # one window: the same attention
    torch.testing.assert_close(blk(one), grd(one))


@pytest.mark.parametrize(
    "name,stage,which",
    [
        ("maxvit_pico_rw_256", 0, "attn_block"),
        ("maxvit_pico_rw_256", 2, "attn_grid"),
        ("maxvit_rmlp_pico_rw_256", 0, "attn_block"),
    ],
)
def test_timm_weights_convert(name, stage, which):
    model = timm.create_model(name, img_size=224)  # 7 x 7 windows and grids as the paper
    part = getattr(model.stages[stage].blocks[0], which)  # a PartitionAttentionCl
    src = part.attn
    if type(src.rel_pos).__name__ != "RelPosBias":  # rmlp: an MLP bias, no conversion
        with pytest.raises(attndsl.AttnDSLError, match="rel_pos"):
            from_module(src)
        return
    part.double().eval()
    randomize(src)
    partition = "block" if which == "attn_block" else "grid"
    ours = from_module(src, partition=partition).eval()
    assert ours.params["partition_size"] == 7 and ours.params["dim_head"] == src.dim_head
    c = src.qkv.weight.shape[1]
    x = torch.randn(2, 14, 21, c, dtype=torch.float64)
    torch.testing.assert_close(ours(x), part._partition_attn(x), atol=1e-9, rtol=1e-7)
    plain = from_module(src).eval()  # no partition given: the block form
    assert plain.params["partition"] == "block"


@pytest.mark.parametrize(
    "params",
    [
        {"channels": 24, "partition_size": 3, "dim_head": 8, "head_first": False},  # the TF qkv layout
        {"channels": 16, "partition_size": 2, "dim_head": 4, "attn_bias": False},
    ],
)
@pytest.mark.parametrize("partition", ["block", "grid"])
def test_convert_reads_layout_bias_and_size(params, partition):
    ref = TimmPartitionAttention(**params, partition=partition).double().eval()
    randomize(ref)
    ours = from_module(ref.block.attn, partition=partition).eval()
    assert ours.params == {**ours.params, **params}
    x = torch.randn(
        2, 2 * params["partition_size"], 3 * params["partition_size"], params["channels"], dtype=torch.float64
    )
    torch.testing.assert_close(ours(x), ref(x), atol=1e-10, rtol=1e-8)


def test_convert_refuses_other_position_biases():
    from timm.layers.pos_embed_rel import RelPosBiasTf

    ref = TimmPartitionAttention(32, partition_size=3)
    ref.block.attn.rel_pos = RelPosBiasTf((3, 3), num_heads=1)  # the TF bias table: not mapped
    with pytest.raises(attndsl.AttnDSLError, match="RelPosBiasTf"):
        from_module(ref.block.attn)


def test_replace_modules_in_a_timm_maxvit():
    """Every AttentionCl of a timm MaxViT swapped for the converted block: the same network output (timm
    calls it on windows [B', P, P, C] already cut by block or grid, where both forms are one window)."""
    from attndsl.checkpoints import replace_modules

    model = timm.create_model("maxvit_pico_rw_256", img_size=224).double().eval()
    randomize(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.mul_(0.2)  # keep 13 random stages finite and informative
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
    done = replace_modules(model, classes={"AttentionCl"}, input_shape=(1, 3, 224, 224))
    assert len(done) == 22 and done[1] == "stages.0.blocks.0.attn_grid.attn"
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref, atol=1e-10, rtol=1e-8)


def test_defaults_are_the_papers():
    m = attndsl.build("maxvit", channels=64)
    p = m.meta["compiled"].params
    assert p["partition_size"] == 7 and p["dim_head"] == 32 and p["partition"] == "block" and p["head_first"]
    sd = m.state_dict()
    assert sd["relative_position_bias_table"].shape == (169, 2)
    assert sd["qkv.weight"].shape == (192, 64) and sd["qkv.bias"].shape == (192,)
    assert sd["proj.bias"].shape == (64,)


def test_sizes_that_are_not_multiples_are_refused():
    m = attndsl.build("maxvit", channels=16, partition_size=3, dim_head=8)
    with pytest.raises(attndsl.InputShapeError, match="partition_size=3"):
        m(torch.randn(1, 6, 7, 16))
    m(torch.randn(1, 6, 9, 16))


def test_dim_head_must_divide_dim():
    with pytest.raises(attndsl.AttnDSLError):
        attndsl.build("maxvit", channels=20, dim_head=8)
