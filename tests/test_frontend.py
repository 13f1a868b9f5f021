"""Frontend semantics: shapes, layers and weight sharing, loops, functions, conditions, parameters."""

import pytest

from attndsl.errors import AttnDSLError, ParamError
from attndsl.frontend import build_graph
from attndsl.shapes import Pack
from tests.helpers import graph, inline_spec, ops


def out_shape(g, i=0):
    return g.node(g.outputs[i][1])["shape"]


def test_symbolic_shapes_flow_through():
    g = graph('y = rearrange(x, "b c h w -> b (h w) c")')
    assert str(out_shape(g)) == "(B, H*W, 8)"


def test_variadic_inputs_keep_their_pack():
    g = graph("y = x * unsqueeze(mean(x, dims=spatial), like=x)", inputs='x: [B, channels, "*S"]')
    assert out_shape(g) == (g.node(g.inputs[0][1])["shape"])
    assert isinstance(out_shape(g)[2], Pack)


def test_named_axis():
    g = graph("y = softmax(x, dim=H)")
    node = g.node(g.outputs[0][1])
    assert node["attrs"]["dim"] == 2


def test_shared_layer_is_declared_once():
    g = graph("""
        fc = linear(channels, 4)
        def mlp(v) = relu(fc(v))
        y = mlp(mean(x, dims=spatial)) + mlp(amax(x, dims=spatial))
    """)
    assert list(g.layers) == ["fc"]
    assert ops(g).count("layer") == 2


def test_loops_declare_numbered_layers():
    g = graph("""
        for i in range(3) {
          conv[i] = conv2d(channels, channels, 3, padding=i + 1, dilation=i + 1)
          u[i] = conv[i](x)
        }
        y = sum(stack(u, dim=1), dims=1)
    """)
    assert list(g.layers) == ["conv.0", "conv.1", "conv.2"]
    assert g.layers["conv.2"].args["dilation"] == (3, 3)
    assert str(out_shape(g)) == "(B, 8, H, W)"


def test_iteration_rebinds():
    g = graph("""
        y = x
        for t in range(4) {
          y = y * 0.5 + x
        }
    """)
    assert ops(g).count("mul") == 4


def test_if_builds_only_the_branch_taken():
    f = """
        if use_bn {
          bn = batchnorm(channels)
          y = bn(x)
        } else {
          y = relu(x)
        }
    """
    spec = inline_spec(f, params="use_bn: {type: bool, default: true}")
    g_on, g_off = build_graph(spec, spec.resolve()), build_graph(spec, spec.resolve(use_bn=False))
    assert list(g_on.layers) == ["bn"] and "relu" not in ops(g_on)
    assert not g_off.layers and "relu" in ops(g_off)


def test_parameter_default_expression():
    spec = inline_spec(
        "y = x",
        params="""
        gamma: {type: int, default: 2}
        b: {type: int, default: 1}
        k_size: {type: int, default: "odd(int(abs((log2(channels) + b) / gamma)))"}
    """,
    )
    assert spec.resolve(channels=64)["k_size"] == 3  # ECA: |(6 + 1) / 2|_odd
    assert spec.resolve(channels=256)["k_size"] == 5
    assert spec.resolve(channels=256, k_size=7)["k_size"] == 7


def test_parameter_cycle_is_an_error():
    spec = inline_spec(
        "y = x",
        params="""
        a: {type: int, default: "b + 1"}
        b: {type: int, default: "a + 1"}
    """,
    )
    with pytest.raises(ParamError, match="depends on itself"):
        spec.resolve()


@pytest.mark.parametrize(
    "f,message",
    [
        ("y = x @ x", "matmul inner sizes differ"),
        ("y = softmax(x, dim=Q)", "undefined name `Q`"),
        ("y = softmax(mean(x, dims=H), dim=H)", "axis `H` is not in shape"),
        ("y = concat([x, mean(x, dims=1)], dim=1)", "ranks differ"),
        ("fc = linear(3, 4)\ny = fc(x)", "linear expects last axis 3"),
        ("y = x if x else x", "must be known at compile time"),
        ("y = x > [1, 2]", "`>` needs tensors or numbers, got a list"),
        ("y = split(x, 3, dim=1)", "does not split into parts of 3"),
        ("c = conv2d(channels, 4, 3, groups=3)", "groups=3 must divide"),
        ("y = unknown_fn(x)", "unknown op `unknown_fn`"),
        ("def f(a) = a\ny = f(x, x)", "takes 1 argument"),
    ],
)
def test_shape_and_name_errors(f, message):
    with pytest.raises(AttnDSLError, match=message.replace("(", r"\(").replace("[", r"\[")):
        graph(f)


def test_where_takes_a_float_condition():
    import torch

    from attndsl.lowering import lower

    g = graph("y = where(relu(x), x, 0 * x)")
    x = torch.randn(2, 8, 5, 6)
    torch.testing.assert_close(lower(g)(x), torch.where(x > 0, x, torch.zeros_like(x)))


def test_pi_is_a_constant():
    import math

    g = graph("y = x * pi")
    assert any(g.node(n)["attrs"].get("value") == math.pi for n in g.order())
