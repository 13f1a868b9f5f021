"""`attndsl check`: a spec end to end at its example shapes.

Parses and verifies the IR after every pass, builds the module, runs forward
and backward on random inputs of the example's shapes (and any extra `shapes`
sets), then writes the generated code to a temporary module, imports it, loads
the built module's state dict into it and compares outputs and gradients.
Entry points: `check_spec`, `example_inputs`, `load_generated`.
"""
from __future__ import annotations

import importlib.util
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AttnDSLError


@dataclass
class Report:
    name: str
    steps: list = field(default_factory=list)   # (ok, text)

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


def load_generated(src: str, name: str):
    """Import generated source as a module (it is attndsl's own output, written to a temporary file)."""
    tmp = Path(tempfile.mkdtemp(prefix="attndsl_"))
    path = tmp / f"{name}.py"
    path.write_text(src)
    mod_name = f"_attndsl_generated_{name}_{abs(hash(src))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    spec.loader.exec_module(mod)
    return mod


def _outs(o):
    return tuple(o) if isinstance(o, (tuple, list)) else (o,)


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
        built = lower(c.graph, c.class_name)
        src = source(c, built)
        mod = load_generated(src, spec.name)
        gen = getattr(mod, c.class_name)(**c.params)
        gen.load_state_dict(built.state_dict())
        if set(gen.state_dict()) != set(built.state_dict()):
            report.add(False, "state dict keys differ between built and generated modules")
        for i, shapes in enumerate([spec.example["inputs"]] + list(spec.shapes)):
            torch.manual_seed(i)
            xs = example_inputs(spec, shapes, seed=i)
            outs = []
            for m in (built, gen):
                m.train()
                ins = [x.clone().requires_grad_() for x in xs]
                out = _outs(m(*ins))
                gen_ = torch.Generator().manual_seed(1)
                loss = sum((o * torch.randn(o.shape, generator=gen_)).sum() for o in out)
                loss.backward()
                outs.append((out, [x.grad for x in ins]))
            (o1, g1), (o2, g2) = outs
            for a, b in zip(o1, o2):
                if not torch.isfinite(a).all():
                    raise AssertionError("non-finite output")
            same = all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(o1, o2)) and all(
                (a is None and b is None) or torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(g1, g2))
            shown = ", ".join(f"{k}{list(v)}" for k, v in shapes.items())
            report.add(same, f"forward+backward at {shown}: outputs {[tuple(o.shape) for o in o1]}, "
                             f"built and generated {'agree' if same else 'DIFFER'}")
    except AttnDSLError as e:
        report.add(False, e.render())
    except Exception as e:   # a check reports every failure instead of stopping at the first
        report.add(False, f"{type(e).__name__}: {e}\n" + traceback.format_exc(limit=3))
    return report
