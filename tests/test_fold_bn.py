"""fold_bn: conv/linear + batch norm folded for inference; the folded module equals the unfolded one in eval."""

import pickle

import pytest
import torch

import attndsl
from attndsl.check import example_inputs
from attndsl.errors import AttnDSLError
from attndsl.passes import DEFAULT_PIPELINE, get_pass
from attndsl.pipeline import load
from tests.helpers import inline_spec, ops, run_pass
from tests.module_protocol import CHECKS, Case

# specs where the pass fires at their example params, with how many BNs it folds
FOLDED = {
    "attention_gate": 1,
    "bam": 4,
    "bilinear_attention": 3,
    "cbam": 1,
    "coordinate_attention": 1,
    "emanet": 1,
    "encnet": 1,
    "genet": 1,
    "gsopnet": 1,
    "hamnet": 1,
    "ocrnet": 7,
    "psanet": 5,
    "residual_attention": 25,
    "resnest": 2,
    "rga": 12,
    "san": 1,
    "scnet": 4,
    "sknet": 3,
    "strip_pooling": 2,
    "tam": 2,
    "triplet_attention": 3,
    "axial_attention": 2,
    "efficientvit": 1,
}  # post-survey blocks: qkv conv+BN per axis, proj conv+BN
TIGHT = {"atol": 1e-12, "rtol": 1e-10}


def _params(name):
    return dict(load(name).example.get("params") or {})


def _inputs(name, dtype=torch.float64):
    spec = load(name)
    return [x.to(dtype) for x in example_inputs(spec, spec.example["inputs"], seed=1)]


def _outs(o):
    return o if isinstance(o, tuple) else (o,)


def _randomise_bn(module):
    """Statistics and affine values a trained BN could have: folding the fresh ones proves little."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                if m.weight is not None:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g))


def _bns(module):
    return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


def test_fold_bn_is_registered_but_not_default():
    assert get_pass("fold_bn").doc and "fold_bn" not in DEFAULT_PIPELINE


def test_the_pass_fires_on_exactly_these_specs():
    fired = {}
    for name in attndsl.all_specs():
        c = attndsl.compile_spec(name, _params(name), DEFAULT_PIPELINE + ["fold_bn"], check=True)
        if c.stats["fold_bn"]["folded"]:
            fired[name] = c.stats["fold_bn"]["folded"]
    assert fired == FOLDED


@pytest.mark.parametrize("name", sorted(FOLDED))
def test_folded_module_equals_unfolded_in_eval(name):
    torch.manual_seed(0)
    plain = attndsl.build(name, **_params(name)).double()
    _randomise_bn(plain)
    plain.eval()
    folded = attndsl.fold_batchnorm(plain)
    assert not folded.training and _bns(plain) - _bns(folded) == FOLDED[name]
    assert next(folded.parameters()).dtype == torch.float64
    xs = _inputs(name)
    with torch.no_grad():
        for a, b in zip(_outs(plain(*xs)), _outs(folded(*xs))):
            torch.testing.assert_close(b, a, **TIGHT)


def test_trained_module_folds_to_the_same_eval_output():
    """The user's path: train the unfolded module (BN statistics move), then fold it."""
    torch.manual_seed(0)
    plain = attndsl.build("bam", channels=16).double().train()
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    for _ in range(3):
        x = torch.randn(4, 16, 6, 6, dtype=torch.float64)
        loss = plain(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert int(plain.state_dict()["bn_reduce.num_batches_tracked"]) == 3
    plain.eval()
    x = torch.randn(2, 16, 6, 6, dtype=torch.float64)
    want = plain(x)
    torch.testing.assert_close(attndsl.fold_batchnorm(plain)(x), want, **TIGHT)
    # the same through build: a state dict of the unfolded module, folded on load
    sd = plain.state_dict()
    again = attndsl.build("bam", channels=16, inference=True).double()
    again.load_state_dict(
        attndsl.build("bam", channels=16, inference=True, state_dict={k: v.float() for k, v in sd.items()}).state_dict()
    )
    torch.testing.assert_close(again(x), want, atol=1e-5, rtol=1e-4)


def test_inference_build_from_the_same_seed_equals_the_plain_build():
    """Folding the fresh BN at build time: same initial eval function, same random draws."""
    torch.manual_seed(0)
    plain = attndsl.build("bam", channels=64).eval()
    torch.manual_seed(0)
    folded = attndsl.build("bam", channels=64, inference=True)
    assert not folded.training and _bns(folded) == 0
    assert "bias" in dict(folded.reduce.named_parameters())  # the conv gained the BN's shift
    x = _inputs("bam", torch.float32)[0]
    torch.testing.assert_close(folded(x), plain(x), atol=1e-5, rtol=1e-5)


def test_a_folded_state_dict_is_refused_as_an_unfolded_one():
    sd = attndsl.build("cbam", channels=32, inference=True).state_dict()
    with pytest.raises(AttnDSLError, match="unfolded module"):
        attndsl.build("cbam", channels=32, inference=True, state_dict=sd)


def test_fold_batchnorm_needs_a_spec_for_a_foreign_module():
    with pytest.raises(AttnDSLError, match="which spec"):
        attndsl.fold_batchnorm(torch.nn.Linear(2, 2))
    m = attndsl.build("cbam", channels=32)
    again = attndsl.fold_batchnorm(pickle.loads(pickle.dumps(m)), "cbam", channels=32)
    assert _bns(again) == 0


def test_train_mode_computes_the_eval_function():
    """Documented: the folded module has no batch statistics left, so train() changes nothing."""
    torch.manual_seed(0)
    plain = attndsl.build("cbam", channels=32).double()
    _randomise_bn(plain)
    folded = attndsl.fold_batchnorm(plain.eval()).train()
    x = torch.randn(2, 32, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(folded(x), plain.eval()(x), **TIGHT)


# --- the rewrite on small programs ------------------------------------------------------------
def _fold(f, **kw):
    return run_pass("fold_bn", f, **kw)


def test_conv_bn_folds_into_one_conv_with_a_bias():
    g, stats = _fold("""
        conv = conv2d(channels, 4, 3, padding=1, bias=false)
        bn = batchnorm(4)
        y = relu(bn(conv(x)))
    """)
    assert stats == {"folded": 1, "skipped": 0}
    assert ops(g) == ["input", "layer", "relu"] and list(g.layers) == ["conv"]
    assert g.layers["conv"].args["bias"] is True and g.layers["conv"].args["fold"]["conv_bias"] is False


def test_linear_bn_folds_only_on_a_matrix():
    g, stats = _fold("""
        fc = linear(channels, 4)
        bn = batchnorm(4)
        y = bn(fc(mean(x, dims=spatial)))
    """)
    assert stats["folded"] == 1
    # [B, N, C]: BN normalises axis 1 (N), the linear writes axis 2: not the same channels
    g, stats = _fold(
        """
        fc = linear(channels, 4)
        bn = batchnorm(4)
        y = bn(fc(x))
    """,
        inputs="x: [B, 4, channels]",
        example="{params: {channels: 8}, inputs: {x: [2, 4, 8]}}",
    )
    assert stats == {"folded": 0, "skipped": 1}


def test_conv_output_read_twice_is_not_folded():
    g, stats = _fold("""
        conv = conv2d(channels, channels, 1)
        bn = batchnorm(channels)
        c = conv(x)
        y = bn(c) + c
    """)
    assert stats == {"folded": 0, "skipped": 1} and "bn" in g.layers


def test_shared_bn_or_conv_is_not_folded():
    g, stats = _fold("""
        conv1 = conv2d(channels, channels, 1)
        conv2 = conv2d(channels, channels, 3, padding=1)
        bn = batchnorm(channels)
        y = bn(conv1(x)) + bn(conv2(x))
    """)
    assert stats == {"folded": 0, "skipped": 2}
    g, stats = _fold("""
        conv = conv2d(channels, channels, 1)
        bn = batchnorm(channels)
        y = bn(conv(x)) + conv(sigmoid(x))
    """)
    assert stats == {"folded": 0, "skipped": 1}


def test_inline_spec_folds_with_the_same_eval_output():
    spec = inline_spec(
        """
        conv = conv2d(channels, 4, 3, padding=1, bias=false)
        bn = batchnorm(4)
        fc = linear(4, 6)
        bn2 = batchnorm(6)
        y = relu(bn2(fc(mean(relu(bn(conv(x))), dims=spatial))))
    """,
        outputs="[y]",
        example="{params: {channels: 8}, inputs: {x: [2, 8, 5, 6]}}",
    )
    torch.manual_seed(0)
    plain = attndsl.build(spec).double()
    _randomise_bn(plain)
    folded = attndsl.fold_batchnorm(plain.eval())
    assert folded.meta["compiled"].stats["fold_bn"] == {"folded": 2, "skipped": 0}
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(folded(x), plain(x), **TIGHT)


# --- a folded module is still a first-class torch module ---------------------------------------
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_folded_module_protocol(check):
    case = Case("bam", "built")
    torch.manual_seed(0)
    plain = case.block
    _randomise_bn(plain)
    case.block = attndsl.fold_batchnorm(plain.eval())
    case._expected = {}
    assert _bns(case.block) == 0
    CHECKS[check](case)


def test_generated_code_of_the_folded_graph_takes_the_folded_weights():
    import types

    src = attndsl.generate("bam", passes=DEFAULT_PIPELINE + ["fold_bn"], channels=64)
    assert "BatchNorm" not in src
    mod = types.ModuleType("generated_folded_bam")
    exec(compile(src, "generated_folded_bam.py", "exec"), mod.__dict__)
    torch.manual_seed(0)
    plain = attndsl.build("bam", channels=64)
    _randomise_bn(plain)
    folded = attndsl.fold_batchnorm(plain.eval())
    gen = mod.Bam(channels=64).eval()
    gen.load_state_dict(folded.state_dict())
    x = _inputs("bam", torch.float32)[0]
    with torch.no_grad():
        torch.testing.assert_close(gen(x), plain(x), atol=1e-5, rtol=1e-5)
