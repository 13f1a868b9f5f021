"""attndsl vs the hand-written eager reference vs that reference under torch.compile, side by side.

    python benchmarks/runtime.py [--repeat 50] [--batch 8] [--train] [names...]

For each spec: the built module (fx, eager), the same under torch.compile, the reference from
tests/reference (eager) and the reference under torch.compile, all with the same weights, on
random inputs of the spec's example shapes (batch overridable). Prints median milliseconds and
the ratios attndsl/reference (eager) and attndsl-compiled/reference-compiled; < 1 means attndsl
is faster. Forward in eval mode by default; --train times forward+backward in train mode.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import attndsl  # noqa: E402
from attndsl.check import example_inputs  # noqa: E402
from attndsl.pipeline import load  # noqa: E402
from tests.oracle import randomize, transfer  # noqa: E402

# spec parameters the reference names differently, and reference keys for spec keys
REFERENCE_KWARGS = {}


def reference_for(name, params, built):
    mod = importlib.import_module(f"tests.reference.{name}")
    ref = mod.Reference(**{REFERENCE_KWARGS.get(name, {}).get(k, k): v for k, v in params.items()})
    try:
        key_map = importlib.import_module(f"tests.specs.test_{name}").__dict__.get("KEY_MAP")
        transfer(built, ref, key_map)
    except (AssertionError, ImportError, RuntimeError) as e:
        print(f"  note: {name}: weights not shared with the reference ({str(e).splitlines()[0][:80]})")
    return ref


def timed(fns, repeat):
    """Median ms of each function, measured in alternation so machine load hits all of them alike."""
    for fn in fns:
        for _ in range(3):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(ts) for ts in times]


def step(module, xs, train):
    if not train:

        def infer():
            with torch.no_grad():
                return module(*xs)

        return infer

    def run():
        out = module(*[x.requires_grad_() for x in xs])
        out = out if isinstance(out, tuple) else (out,)
        sum(o.sum() for o in out).backward()

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="eager columns only")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier numbers)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.names or sorted(attndsl.all_specs())
    print(
        f"# {platform.machine()} {platform.processor()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"{'train fwd+bwd' if args.train else 'eval forward'}, median of {args.repeat}"
    )
    head = f"{'spec':<20} {'attndsl':>9} {'ref':>9} {'ratio':>6}"
    if not args.no_compile:
        head += f" {'attndsl+c':>10} {'ref+c':>9} {'ratio':>6}"
    print(head + "   (ms)")
    for name in names:
        spec = load(name)
        params = spec.example.get("params") or {}
        shapes = {k: list(v) for k, v in spec.example["inputs"].items()}
        if args.batch:
            for v in shapes.values():
                v[0] = args.batch
        torch.manual_seed(0)
        built = attndsl.build(name, **params)
        randomize(built)
        try:
            ref = reference_for(name, params, built)
        except Exception as e:  # a reference with another signature: report, go on
            print(f"{name:<20} reference not built: {type(e).__name__}: {e}")
            continue
        for m in (built, ref):
            m.train(args.train)
        xs = example_inputs(spec, shapes)
        fns = [step(built, xs, args.train), step(ref, xs, args.train)]
        if not args.no_compile:
            fns += [step(torch.compile(built), xs, args.train), step(torch.compile(ref), xs, args.train)]
        try:
            t = timed(fns, args.repeat)
        except Exception as e:  # a reference whose forward takes other inputs (explicit noise...)
            print(f"{name:<20} not comparable: {type(e).__name__}: {str(e).splitlines()[0][:70]}")
            continue
        line = f"{name:<20} {t[0]:9.3f} {t[1]:9.3f} {t[0] / t[1]:6.2f}"
        if not args.no_compile:
            line += f" {t[2]:10.3f} {t[3]:9.3f} {t[2] / t[3]:6.2f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
