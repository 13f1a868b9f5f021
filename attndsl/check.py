"""`attndsl check`: a spec end to end at its example shapes.

Parses and verifies the IR after every pass, builds the module, runs forward
and backward on random inputs of the example's shapes (and any extra `shapes`
sets; with other parameter values, every size that depends on a parameter is
recomputed from the spec's symbolic inputs), then writes the generated code to
a temporary directory that is removed afterwards, imports it, loads the built
module's state dict into it and compares outputs and gradients, both modules
run from the same RNG state. Entry points: `check_spec`, `example_inputs`,
`input_shapes`, `load_generated`.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import limits
from .errors import AttnDSLError, SpecError


@dataclass
class Report:
    name: str
    steps: list = field(default_factory=list)  # (ok, text)
    error: AttnDSLError | None = None  # a mistake in the spec or the parameters (CLI: exit 2)

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.steps)

    def add(self, ok: bool, text: str):
        self.steps.append((ok, text))

    def render(self) -> str:
        lines = [f"{self.name}: {'ok' if self.ok else 'FAILED'}"]
        lines += [f"  [{'ok' if ok else 'FAIL'}] {t}" for ok, t in self.steps]
        return "\n".join(lines)


def example_inputs(spec, shapes: dict | None = None, seed: int = 0, dtype=None):
    """Random inputs for the example's (or the given) shapes, in the spec's input order."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    shapes = shapes or spec.example["inputs"]
    return [torch.randn(*shapes[name], generator=gen, dtype=dtype or torch.float32) for name in spec.inputs]


def load_generated(src: str, name: str = "generated"):
    """Import generated source as a module.

    The file lives in a temporary directory of its own, under a fixed name (nothing
    from the spec is in the path), removed with the directory once imported; the
    module is not left in sys.modules.
    """
    mod_name = f"_attndsl_generated_{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix="attndsl_check_") as tmp:
        path = Path(tmp) / "generated.py"
        path.write_text(src, encoding="utf-8")
        spec = importlib.util.spec_from_file_location(mod_name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = mod
        try:
            spec.loader.exec_module(mod)
        finally:
            sys.modules.pop(mod_name, None)
    return mod


def _sizes(spec, where: tuple, sizes, name: str) -> list:
    span = spec.span(*where, name) or spec.span(*where) or spec.span("example")
    if (
        not isinstance(sizes, list)
        or not sizes
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)
    ):
        raise SpecError(f"input `{name}` needs a list of positive sizes here, got {sizes!r}", span)
    if math.prod(sizes) > limits.MAX_ELEMENTS:
        raise SpecError(
            f"input `{name}` of {sizes} has over {limits.MAX_ELEMENTS:,} elements", span, "docs/language.md, Limits"
        )
    return sizes


def input_shapes(spec, values: dict, shapes: dict | None = None, where: tuple = ("example", "inputs")) -> dict:
    """The sizes of each input for a check at parameter `values`.

    The example's sizes give the free symbols (B, H, W, a `*S` run); every declared
    dimension that names a parameter, or is an expression of parameters, is
    recomputed from `values`, so `-p channels=128` checks 128 channels.
    """
    from .frontend import multiple_of
    from .shapes import norm
    from .spec import eval_static
    from .syntax import IfExp, Source, Var, parse_expression

    shapes = spec.example["inputs"] if shapes is None else shapes
    if not isinstance(shapes, dict):
        raise SpecError("input shapes must map each input to its sizes", spec.span(*where) or spec.span("example"))
    out = {}
    for name, dims in spec.inputs.items():
        if name not in shapes:
            raise SpecError(
                f"no sizes for input `{name}`", spec.span(*where) or spec.span("example"), f"add `{name}: [...]`"
            )
        sizes = _sizes(spec, where, shapes[name], name)
        packs = [i for i, d in enumerate(dims) if isinstance(d, str) and d.startswith("*")]
        fixed = len(dims) - len(packs)
        if len(sizes) < fixed if packs else len(sizes) != fixed:
            raise SpecError(
                f"input `{name}` is declared {dims}, the sizes {sizes} have another rank",
                spec.span(*where, name) or spec.span(*where),
            )
        lined = []  # (declared dimension or None inside a *S run, size)
        rest = list(sizes)
        for i, d in enumerate(dims):
            if i in packs:
                n = len(rest) - (len(dims) - i - 1)
                lined += [(None, s) for s in rest[:n]]
                rest = rest[n:]
            else:
                lined.append((d, rest.pop(0)))
        symbols = {d: s for d, s in reversed(lined) if isinstance(d, str) and d.isidentifier() and d not in values}
        new = []
        for d, size in lined:
            if isinstance(d, str) and d in values:
                size = values[d]
            elif isinstance(d, str) and not d.isidentifier():
                span = spec.span("inputs", name, dims.index(d))
                src = Source(spec.path, d, span.line - 1 if span else 0, (span.col - 1) if span else 0, spec.lines)
                lookup, known = (lambda n: values[n] if n in values else symbols[n]), set(values) | set(symbols)
                expr = parse_expression(src)
                while isinstance(expr, IfExp):  # a conditional size: the branch the parameters take
                    expr = expr.then if eval_static(expr.cond, lookup, known) else expr.orelse
                if isinstance(expr, Var) and expr.name not in known and expr.name not in ("true", "false", "pi"):
                    new.append(size)  # a symbol (`... else H`): the example's size
                    continue
                multiple = multiple_of(expr, values)
                if multiple is not None:  # `k * n`: the example's size, down to a multiple of k at `values`
                    k = eval_static(multiple[0], values.__getitem__, set(values))
                    if isinstance(size, int) and isinstance(k, int) and k >= 1:
                        size = k * max(1, size // k)
                    new.append(size)
                    continue
                try:
                    size = norm(eval_static(expr, lookup, known))
                except (KeyError, TypeError, ValueError, ArithmeticError):
                    pass  # a symbol the example does not pin down: keep its size
            new.append(size)
        out[name] = _sizes(spec, where, [int(n) if isinstance(n, float) and n.is_integer() else n for n in new], name)
    return out


def _outs(o):
    return tuple(o) if isinstance(o, (tuple, list)) else (o,)


def _seeded(seed: int):
    import torch

    torch.manual_seed(seed)


def check_spec(spec_ref, params: dict | None = None) -> Report:
    import torch

    from .codegen import source
    from .lowering import lower
    from .pipeline import compile_spec, load

    report = Report(str(spec_ref))
    try:
        spec = load(spec_ref)
        report.name = spec.name
        values = {**(spec.example.get("params") or {}), **(params or {})}
        c = compile_spec(spec, values, check=True)
        report.add(True, f"parsed and verified after every pass ({c.nodes_before} -> {len(c.graph)} IR nodes)")
        if not isinstance(spec.shapes, list) or not all(isinstance(s, dict) for s in spec.shapes):
            raise SpecError("`shapes` must be a list of input-shape sets", spec.span("shapes"))
        sets = [input_shapes(spec, c.params)] + [
            input_shapes(spec, c.params, s, ("shapes", i)) for i, s in enumerate(spec.shapes)
        ]
        built = lower(c.graph, c.class_name)
        src = source(c, built)
        mod = load_generated(src)
        gen = getattr(mod, c.class_name)(**c.params)
        gen.load_state_dict(built.state_dict())
        if set(gen.state_dict()) != set(built.state_dict()):
            report.add(False, "state dict keys differ between built and generated modules")
        for i, shapes in enumerate(sets):
            xs = example_inputs(spec, shapes, seed=i)
            outs = []
            for m in (built, gen):
                m.train()
                ins = [x.clone().requires_grad_() for x in xs]
                _seeded(i)  # dropout and rand_like draw the same numbers in both modules
                out = _outs(m(*ins))
                gen_ = torch.Generator().manual_seed(1)
                loss = sum((o * torch.randn(o.shape, generator=gen_)).sum() for o in out)
                loss.backward()
                outs.append((out, [x.grad for x in ins]))
            (o1, g1), (o2, g2) = outs
            for a, _b in zip(o1, o2):
                if not torch.isfinite(a).all():
                    raise AssertionError("non-finite output")
            same = all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(o1, o2)) and all(
                (a is None and b is None) or torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(g1, g2)
            )
            shown = ", ".join(f"{k}{list(v)}" for k, v in shapes.items())
            report.add(
                same,
                f"forward+backward at {shown}: outputs {[tuple(o.shape) for o in o1]}, "
                f"built and generated {'agree' if same else 'DIFFER'}",
            )
    except AttnDSLError as e:
        report.error = e
        report.add(False, e.render())
    except Exception as e:  # a check reports every failure instead of stopping at the first
        report.add(False, f"{type(e).__name__}: {e}")
    return report
