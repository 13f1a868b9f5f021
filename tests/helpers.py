"""Small specs written inline, for pass, frontend and lowering tests."""

from __future__ import annotations

import textwrap

from attndsl.frontend import build_graph
from attndsl.spec import load_spec


def spec_text(
    f: str,
    g: str = "",
    inputs: str = "x: [B, channels, H, W]",
    params: str = "",
    outputs: str = "[y]",
    example: str = "{params: {channels: 8}, inputs: {x: [2, 8, 5, 6]}}",
) -> str:
    def block(key, text):
        if not text.strip():
            return ""
        return f"{key}: |\n" + textwrap.indent(textwrap.dedent(text).strip("\n") + "\n", "  ")

    return "\n".join(
        [
            "name: inline",
            "title: Inline test spec",
            "family: channel",
            'paper: "none"',
            "params:",
            "  channels: {type: int, default: 8}",
            textwrap.indent(textwrap.dedent(params), "  "),
            "inputs:",
            textwrap.indent(textwrap.dedent(inputs), "  "),
            block("g", g),
            block("f", f),
            f"outputs: {outputs}",
            f"example: {example}",
            "",
        ]
    )


def inline_spec(f: str, **kw):
    return load_spec("inline.yaml", spec_text(f, **kw))


def graph(f: str, params=None, **kw):
    spec = inline_spec(f, **kw)
    return build_graph(spec, spec.resolve(**(params or {})))


def ops(g) -> list:
    return [g.node(n)["op"] for n in g.order()]


def run_pass(name: str, f: str, **kw):
    """The IR of a one-program spec after the pass `name`, verified, and the pass's counters."""
    from attndsl.passes import get_pass
    from attndsl.verify import verify

    g = graph(f, **kw)
    stats = get_pass(name).apply(g)
    verify(g)
    return g, stats


def assert_same_outputs_and_grads(a, b, x):
    """Two modules agree on x: outputs, the input's gradient and every parameter's (float64 tolerances)."""
    import torch

    outs = []
    for m in (a, b):
        xi = x.clone().requires_grad_()
        y = m(xi)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
        outs.append((y, xi.grad, {k: p.grad for k, p in m.named_parameters()}))
    torch.testing.assert_close(outs[1], outs[0], atol=1e-10, rtol=1e-9)
