"""residual_attention against tests/reference/residual_attention.py: Attention-56 stages, activations, NAL."""

import pytest

import attndsl
from tests.oracle import check_against_reference, transfer
from tests.reference.residual_attention import ResidualAttention

SHAPES = [
    {"x": [2, 8, 14, 14]},
    {"x": [1, 8, 9, 13]},  # batch 1, odd, non-square
    {"x": [3, 8, 6, 11]},
]
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def key_map(levels=3, p=1, t=2, r=1, **_):
    """Spec unit table `bn1.u`, `conv1.u`... -> reference `pre.i`, `trunk.i`, `down.k.j`, `skip.k.0`, `up.k.j`, `post.i`."""
    prefixes = (
        [f"pre.{i}" for i in range(p)]
        + [f"trunk.{i}" for i in range(t)]
        + [f"down.{k}.{j}" for k in range(levels) for j in range(2 * r if k == levels - 1 else r)]
        + [f"skip.{k}.0" for k in range(levels - 1)]
        + [f"up.{k}.{j}" for k in range(levels - 1) for j in range(r)]
        + [f"post.{i}" for i in range(p)]
    )
    out = {}
    for u, pre in enumerate(prefixes):
        for n in (1, 2, 3):
            out[f"conv{n}.{u}.weight"] = f"{pre}.conv{n}.weight"
            out.update({f"bn{n}.{u}.{k}": f"{pre}.bn{n}.{k}" for k in BN})
    return out


def reference_for(block):
    """The reference at block's parameters, with its weights (also benchmarks/realsize.py's)."""
    p = block.meta["compiled"].params
    ref = ResidualAttention(**p)
    transfer(block, ref, key_map(**p))
    return ref


@pytest.mark.parametrize(
    "params",
    [
        {},  # Attention-56 stage 1: levels 3, p=1, t=2, r=1, f1
        {"levels": 2, "activation": "channel"},  # stage 2, f2
        {"levels": 1, "activation": "spatial"},  # stage 3, f3
        {"attention_residual": False, "p": 2, "t": 1, "r": 2},  # NAL
    ],
)
def test_matches_reference(params):
    check_against_reference(
        "residual_attention",
        {"channels": 8, **params},
        reference_for,
        SHAPES,
        key_map=key_map(**params),
    )


def test_defaults_are_attention56_stage1():
    m = attndsl.build("residual_attention", channels=256)
    assert m.get_submodule("conv1.0").weight.shape == (64, 256, 1, 1) and m.get_submodule("conv1.0").bias is None
    assert len(list(m.bn1.children())) == 1 + 2 + 4 + 2 + 2 + 1  # pre, trunk, down 1+1+2, skip 2, up 2, post
