"""Time spec -> torch.fx.GraphModule (parse, frontend, passes, lowering; no torch.compile) for every spec.

    python benchmarks/build_time.py [--repeat 20] [names...]

The first call of each spec (cold: YAML parse, grammar load, imports) is reported apart;
the median of the following calls is the number that matters (target: under 50 ms).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import attndsl
from attndsl.pipeline import load


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    names = args.names or sorted(attndsl.all_specs())
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, python {platform.python_version()}"
    )
    print(f"{'spec':<20} {'first ms':>9} {'median ms':>10} {'min ms':>8} {'IR nodes':>9}")
    medians = []
    for name in names:
        params = load(name).example.get("params") or {}
        t0 = time.perf_counter()
        gm = attndsl.build(name, **params)
        first = (time.perf_counter() - t0) * 1e3
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            attndsl.build(name, **params)
            times.append((time.perf_counter() - t0) * 1e3)
        med = statistics.median(times)
        medians.append(med)
        n = len(gm.meta["compiled"].graph)
        print(f"{name:<20} {first:9.1f} {med:10.1f} {min(times):8.1f} {n:9d}")
    print(
        f"{'all specs':<20} {'':9} {statistics.median(medians):10.1f} (median of medians); "
        f"max median {max(medians):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
