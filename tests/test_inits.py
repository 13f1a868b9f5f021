"""The initialisation vocabulary (attndsl/inits.py): draws against torch.nn.init, the seven specs'
official inits against their references, and errors at the spec line.

Statistics: a two-sample Kolmogorov-Smirnov distance between a large attndsl draw and a draw of
the reference initialiser on a tensor of the same shape, against the critical value at
significance 1e-6 for those sample sizes, plus exact bounds where the distribution has them.
Every draw is seeded, so the tests are deterministic; each check is also shown to reject a
near miss (fan_out for fan_in, a std off by a quarter), so it is not a check that cannot fail.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from torch import nn

import attndsl
from attndsl.check import load_generated
from attndsl.errors import AttnDSLError
from attndsl.pipeline import compile_spec
from tests.helpers import inline_spec

ALPHA = 1e-6


def ks_distance(a, b) -> float:
    a, b = np.sort(np.asarray(a, dtype=np.float64).ravel()), np.sort(np.asarray(b, dtype=np.float64).ravel())
    both = np.concatenate([a, b])
    return float(
        np.abs(np.searchsorted(a, both, side="right") / a.size - np.searchsorted(b, both, side="right") / b.size).max()
    )


def ks_critical(n: int, m: int) -> float:
    return math.sqrt(-math.log(ALPHA / 2) / 2) * math.sqrt((n + m) / (n * m))


def same_distribution(a, b) -> bool:
    a, b = torch.as_tensor(a).detach(), torch.as_tensor(b).detach()
    return ks_distance(a, b) < ks_critical(a.numel(), b.numel())


def reference_draw(shape, fn, seed=1):
    torch.manual_seed(seed)
    t = torch.empty(shape)
    with torch.no_grad():
        fn(t)
    return t


# --- the vocabulary, on a [256, 512] linear weight (fan_in 512, fan_out 256) --------------------

SHAPE = (256, 512)
DRAWS = [  # init as written in a spec, the torch.nn.init reference, bounds (or None)
    (
        'kaiming_normal(mode="fan_out", nonlinearity="relu")',
        lambda t: nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
        None,
    ),
    ("kaiming_normal()", nn.init.kaiming_normal_, None),
    (
        'kaiming_uniform(a=1, mode="fan_in", nonlinearity="leaky_relu")',
        lambda t: nn.init.kaiming_uniform_(t, a=1, mode="fan_in", nonlinearity="leaky_relu"),
        "symmetric",
    ),
    ('kaiming_uniform(nonlinearity="tanh")', lambda t: nn.init.kaiming_uniform_(t, nonlinearity="tanh"), "symmetric"),
    ("xavier_normal(gain=2)", lambda t: nn.init.xavier_normal_(t, gain=2), None),
    ("xavier_uniform()", nn.init.xavier_uniform_, "symmetric"),
    (
        "trunc_normal(mean=0.5, std=0.02, a=0.47, b=0.55)",
        lambda t: nn.init.trunc_normal_(t, mean=0.5, std=0.02, a=0.47, b=0.55),
        (0.47, 0.55),
    ),
    ("trunc_normal(std=0.02)", lambda t: nn.init.trunc_normal_(t, std=0.02), (-2, 2)),
    ("normal(mean=1, std=3)", lambda t: nn.init.normal_(t, 1, 3), None),
    ("normal(std=1 / sqrt(channels))", lambda t: nn.init.normal_(t, 0, 1 / math.sqrt(512)), None),
    ("uniform(a=-2, b=5)", lambda t: nn.init.uniform_(t, -2, 5), (-2, 5)),
    ('"normal"', lambda t: nn.init.normal_(t, std=0.01), None),  # the bare names keep their meaning
    ('"uniform"', lambda t: nn.init.uniform_(t, -0.1, 0.1), (-0.1, 0.1)),
]
EXACT = [
    ("constant(0.5)", 0.5),
    ("constant(value=-2)", -2.0),
    ("0.25", 0.25),
    ("zeros()", 0.0),
    ("ones()", 1.0),
    ('"ones"', 1.0),
]


def _layer_spec(init: str, kind="linear"):
    layer = {"linear": f"linear(channels, 256, weight_init={init})", "param": f"param([256, channels], init={init})"}[
        kind
    ]
    use = "fc(x)" if kind == "linear" else "x @ transpose(fc)"
    return inline_spec(
        f"fc = {layer}\ny = {use}",
        inputs="x: [B, channels]",
        example="{params: {channels: 512}, inputs: {x: [2, 512]}}",
        params="channels: {type: int, default: 512}",
    )


def _weights(init: str, kind="linear"):
    """The same init drawn by a built module and by generated code (seeded differently)."""
    spec = _layer_spec(init, kind)
    torch.manual_seed(2)
    built = attndsl.build(spec)
    mod = load_generated(attndsl.generate(spec), "inline")
    torch.manual_seed(3)
    gen = mod.Inline()
    pick = (lambda m: m.fc.weight) if kind == "linear" else (lambda m: m.fc)
    return pick(built).detach(), pick(gen).detach()


@pytest.mark.parametrize("kind", ["linear", "param"])
@pytest.mark.parametrize("init,ref,bounds", DRAWS, ids=[d[0] for d in DRAWS])
def test_draw_matches_torch_init(init, ref, bounds, kind):
    want = reference_draw(SHAPE, ref)
    for got in _weights(init, kind):
        assert got.shape == SHAPE
        assert same_distribution(got, want), (init, ks_distance(got, want))
        mean_tol = 6 * want.std().item() / math.sqrt(got.numel())
        assert abs(got.mean().item() - want.mean().item()) < 2 * mean_tol
        assert abs(got.std().item() / want.std().item() - 1) < 0.02
        if bounds == "symmetric":
            bound = want.abs().max().item() * (1 + 1e-3)
            assert got.abs().max().item() <= bound
        elif bounds is not None:
            assert bounds[0] <= got.min().item() and got.max().item() <= bounds[1]


@pytest.mark.parametrize("init,value", EXACT, ids=[e[0] for e in EXACT])
def test_constants_are_exact(init, value):
    for got in _weights(init):
        assert torch.equal(got, torch.full(SHAPE, value))


def test_the_statistics_reject_a_near_miss():
    """The KS check tells fan_in from fan_out, and a std 25% off, at these sizes."""
    got = _weights('kaiming_normal(mode="fan_out", nonlinearity="relu")')[0]
    assert not same_distribution(
        got, reference_draw(SHAPE, lambda t: nn.init.kaiming_normal_(t, mode="fan_in", nonlinearity="relu"))
    )
    got = _weights("normal(mean=1, std=3)")[0]
    assert not same_distribution(got, reference_draw(SHAPE, lambda t: nn.init.normal_(t, 1, 3.75)))


def test_generated_code_writes_the_init_call():
    src = attndsl.generate(_layer_spec('kaiming_normal(mode="fan_out", nonlinearity="relu")'))
    assert "nn.init.kaiming_normal_(self.fc.weight, a=0.0, mode='fan_out', nonlinearity='relu')" in src
    src = attndsl.generate(_layer_spec("normal(std=1 / sqrt(channels))"))
    assert "nn.init.normal_(self.fc.weight, mean=0.0, std=(1 / math.sqrt(channels)))" in src  # stays parametric


def test_tied_init_copies_the_other_layer():
    spec = inline_spec(
        """
        k = linear(channels, 16, bias=false, weight_init=kaiming_normal())
        v = linear(16, channels, bias=false, weight_init=tied(k, transpose=true))
        p = param([channels, 16], init=normal(std=2))
        q = param([channels, 16], init=tied(p))
        y = v(k(x)) + x @ p @ transpose(q)
        """,
        inputs="x: [B, channels]",
        example="{params: {channels: 8}, inputs: {x: [2, 8]}}",
    )
    built = attndsl.build(spec)
    gen = load_generated(attndsl.generate(spec), "inline").Inline()
    for m in (built, gen):
        assert torch.equal(m.v.weight, m.k.weight.t()) and torch.equal(m.q, m.p)
        # a copy at init, not shared storage: training moves them apart
        assert m.v.weight.data_ptr() != m.k.weight.data_ptr() and m.q.data_ptr() != m.p.data_ptr()
        with torch.no_grad():
            m.k.weight.add_(1)
        assert not torch.equal(m.v.weight, m.k.weight.t())


def test_bias_init_of_a_bias_a_parameter_switches_off():
    """`bias=flag, bias_init=...` with flag false: no bias, and the generated module builds as the built one."""
    spec = inline_spec(
        'fc = linear(channels, 4, bias=flag, weight_init=trunc_normal(std=0.02), bias_init="zeros")\ny = fc(x)',
        params="flag: {type: bool, default: false}",
        inputs="x: [B, channels]",
        example="{params: {channels: 8}, inputs: {x: [2, 8]}}",
    )
    src = attndsl.generate(spec)
    assert "self.fc.bias" not in src
    built, gen = attndsl.build(spec), load_generated(src, "inline").Inline()
    assert built.fc.bias is None and gen.fc.bias is None
    gen.load_state_dict(built.state_dict())
    x = torch.randn(2, 8)
    torch.testing.assert_close(gen(x), built(x))


# --- the seven specs: the built module's parameters against the reference's official init --------


def _reference(name):
    return importlib.import_module(f"tests.reference.{name}")


SPECS = [  # spec, parameters, reference factory, [(our tensor, the reference's tensor)]
    (
        "encnet",
        {"channels": 256, "ncodes": 1024},
        lambda r: r.ContextEncoding(256, ncodes=1024),
        [("codewords", "codewords"), ("scale", "scale")],
    ),
    (
        "emanet",
        {"channels": 512, "k": 8},
        lambda r: r.EMAttention(512, k=8),
        [("conv1.weight", "conv1.weight"), ("conv2.weight", "conv2.weight")],
    ),
    (
        "hamnet",
        {"channels": 256, "ham_channels": 512},
        lambda r: r.HamNet(256, ham_channels=512),
        [
            ("lower_bread.weight", "lower_bread.weight"),
            ("cheese.0.weight", "cheese.0.weight"),
            ("upper_bread.weight", "upper_bread.weight"),
        ],
    ),
    (
        "sasa",
        {"channels": 512, "kernel_size": 7},
        lambda r: r.SASA(512, kernel_size=7),
        [("rel_h", "rel_h"), ("rel_w", "rel_w")],
    ),
    (
        "condconv",
        {"channels": 256, "out_channels": 16, "kernel_size": 1, "num_experts": 64},
        lambda r: r.CondConv(256, out_channels=16, kernel_size=1, num_experts=64),
        [("routing.weight", "routing.weight"), ("routing.bias", "routing.bias"), ("weight", "weight")],
    ),
    ("gala", {"channels": 4096}, lambda r: r.GALA(4096), [("a", "a"), ("m", "m")]),
    (
        "eanet",
        {"channels": 512, "memory_units": 256},
        lambda r: r.EANet(512, memory_units=256),
        [
            ("conv1.weight", "conv1.weight"),
            ("linear_0.weight", "linear_0.weight"),
            ("linear_1.weight", "linear_1.weight"),
            ("conv2.0.weight", "conv2.0.weight"),
        ],
    ),
]


def _tensor(module, path):
    return module.get_parameter(path).detach()


@pytest.mark.parametrize("name,params,make_ref,pairs", SPECS, ids=[s[0] for s in SPECS])
def test_spec_uses_its_official_init(name, params, make_ref, pairs):
    torch.manual_seed(5)
    ours = attndsl.build(name, **params)
    torch.manual_seed(6)
    ref = make_ref(_reference(name))
    for mine, theirs in pairs:
        a, b = _tensor(ours, mine), _tensor(ref, theirs)
        assert a.numel() == b.numel(), mine
        if b.std() == 0:  # a constant init (zero biases)
            assert torch.equal(a.flatten(), b.flatten()), mine
            continue
        assert same_distribution(a, b), (name, mine, ks_distance(a, b))


def test_official_init_values():
    """The reference draws match the initialisers the notes name (against torch.nn.init directly)."""
    m = attndsl.build("emanet", channels=512, k=8)
    want = reference_draw((512, 512, 1, 1), lambda t: nn.init.normal_(t, 0, math.sqrt(2 / 512)))
    assert same_distribution(m.conv1.weight, want)
    m = attndsl.build("encnet", channels=256, ncodes=1024)
    bound = 1 / math.sqrt(1024 * 256)
    assert -bound <= m.codewords.min() and m.codewords.max() <= bound
    assert -1 <= m.scale.min() and m.scale.max() <= 0
    m = attndsl.build("gala", channels=4096)
    std = 1 / 0.87962566103423978
    assert same_distribution(
        m.a, reference_draw((4096,), lambda t: nn.init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std))
    )
    assert -2 * std <= m.m.min() and m.m.max() <= 2 * std
    m = attndsl.build("sasa", channels=512, kernel_size=7)
    assert same_distribution(m.rel_h, reference_draw((256, 7), nn.init.normal_))
    assert not same_distribution(m.rel_h, reference_draw((256, 7), lambda t: nn.init.normal_(t, std=0.01)))


def test_eanet_memories_are_tied_transposed():
    torch.manual_seed(0)
    built = attndsl.build("eanet", channels=64)
    gen = load_generated(attndsl.generate("eanet", channels=64), "eanet").Eanet(64)
    for m in (built, gen):
        assert torch.equal(m.linear_1.weight, m.linear_0.weight.t())
        # N(0, sqrt(2 / C)): what the official tie leaves in both memories
        assert abs(m.linear_0.weight.std().item() / math.sqrt(2 / 64) - 1) < 0.1


# --- errors at the spec line ---------------------------------------------------------------------

ERRORS = [  # the layer line, message fragment, hint fragment, the text the caret starts at
    (
        "linear(channels, 4, weight_init=kaiming_normall())",
        "unknown op `kaiming_normall`",
        "did you mean `kaiming_normal`?",
        "kaiming_normall",
    ),
    (
        'linear(channels, 4, weight_init=kaiming_normal(mod="fan_out"))',
        "`kaiming_normal` has no argument `mod`",
        "did you mean `mode`?",
        "mod=",
    ),
    (
        'linear(channels, 4, weight_init=kaiming_uniform(mode="fan_ot"))',
        "`mode` must be one of fan_in, fan_out",
        "did you mean `fan_out`?",
        "mode=",
    ),
    (
        'linear(channels, 4, weight_init=kaiming_normal(nonlinearity="swish"))',
        "`nonlinearity` must be one of",
        None,
        "nonlinearity=",
    ),
    (
        'linear(channels, 4, weight_init="kaiming_normal")',
        "`weight_init` must be one of",
        "call it: `weight_init=kaiming_normal(...)`",
        "weight_init=",
    ),
    (
        'linear(channels, 4, weight_init="normall")',
        "`weight_init` must be one of",
        "did you mean `normal`?",
        "weight_init=",
    ),
    (
        "linear(channels, 4, bias_init=xavier_uniform())",
        "`xavier_uniform` needs a tensor of 2 or more axes",
        "for vectors",
        "bias_init=",
    ),
    ("linear(channels, 4, weight_init=normal(std=0))", "`std` must be positive", None, "std="),
    ("linear(channels, 4, weight_init=uniform(a=1, b=-1))", "a < b", None, "b="),
    ("linear(channels, 4, weight_init=trunc_normal(mean=9, a=-1, b=1))", "more than 2 std", None, "mean="),
    ("linear(channels, 4, weight_init=normal(std=x))", "an init argument is a number", "signature: normal(", "std="),
    ('linear(channels, 4, weight_init=xavier_normal(gain="2"))', "`gain` must be a number", None, "gain="),
    (
        "linear(channels, 4, weight_init=constant())",
        "`constant` needs `value`",
        "signature: constant(value)",
        "constant(",
    ),
    ("linear(channels, 4, weight_init=tied(2))", "`layer` must be a declared layer", None, "2)"),
    ("linear(channels, 4, weight_init=tied(x))", "a declared layer for `tied`, got a tensor", None, "x)"),
    (
        'linear(channels, 4, weight_init=kaiming_normal(nonlinearity="relu\')\\nimport os #"))',
        "`nonlinearity` must be one of",
        None,
        "nonlinearity=",
    ),  # nothing from a spec reaches the code
    ("linear(channels, 4, bias=false, bias_init=zeros())", "has no bias", "bias=false", "bias_init="),
    ("linear(channels, 4, weight_init=tied(fc0))", "cannot start as `fc0`'s [8, 4]", "transpose=true", "weight_init="),
]


@pytest.mark.parametrize("layer,message,hint,at", ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_bad_init_is_an_error_at_its_spec_line(layer, message, hint, at):
    spec = inline_spec(
        f"fc0 = linear(4, channels)\nfc = {layer}\ny = x",
        inputs="x: [B, channels]",
        example="{params: {channels: 8}, inputs: {x: [2, 8]}}",
    )
    with pytest.raises(AttnDSLError) as info:
        compile_spec(spec, spec.resolve())
    err = info.value
    line = next(i for i, ln in enumerate(spec.lines, 1) if ln.strip().startswith("fc = "))
    assert message in err.message
    assert (hint or "") in (err.hint or "")
    assert err.span.line == line
    src = spec.lines[line - 1]
    assert src[err.span.col - 1 :].startswith(at), (src, err.span.col)
    assert err.render().splitlines()[0].startswith(f"inline.yaml:{line}:{err.span.col}: error:")


def test_an_init_is_not_a_tensor_value():
    spec = inline_spec("y = x + normal()")
    with pytest.raises(AttnDSLError, match="got an init"):
        compile_spec(spec, spec.resolve())
