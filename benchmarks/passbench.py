"""Shared loop of the single-pass benchmarks: one case built with the default pipeline and with one more
pass, from the same weights, run in alternation (eval forward, fp32, one thread); medians in ms.

Used by reassociate.py and fuse_projections.py; each prints one row per case (see RESULTS.md).
"""

import argparse
import statistics
import time

import torch

import attndsl
from attndsl.passes import DEFAULT_PIPELINE


def run(cases, extra_pass: str, counter: str, description: str, in_default: bool = False):
    """Time each (label, spec, params, input shape) off and on; `counter` names the pass's rewrite count (None: all its counters). A pass of
    the default pipeline (`in_default`) is "off" without it and "on" as the default pipeline runs it; another is
    "off" in the default pipeline and "on" added to it. `--compiled` adds both under torch.compile."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default=None, help="run the cases whose label contains this")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compiled", action="store_true", help="also time both under torch.compile(dynamic=False)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), eval fp32, median of {args.repeat} "
        "alternating runs, ms"
    )
    cols = ["off", "on"] + (["off+c", "on+c"] if args.compiled else [])
    ratios = ["on/off"] + (["on+c/off+c"] if args.compiled else [])
    print(f"{'case':48s} " + " ".join(f"{c:>9s}" for c in cols + ratios) + "  rewrites  rel diff")
    without = [p for p in DEFAULT_PIPELINE if p != extra_pass]
    passes_off, passes_on = (
        (without, DEFAULT_PIPELINE) if in_default else (DEFAULT_PIPELINE, DEFAULT_PIPELINE + [extra_pass])
    )
    for label, spec, params, shape in cases:
        if args.only and args.only not in label:
            continue
        torch.manual_seed(0)
        off = attndsl.build(spec, passes=passes_off, **params).eval()
        on = attndsl.build(spec, passes=passes_on, **params).eval()
        on.load_state_dict(off.state_dict())
        mods = {"off": off, "on": on}
        if args.compiled:
            mods.update({"off+c": torch.compile(off, dynamic=False), "on+c": torch.compile(on, dynamic=False)})
        x = torch.randn(*shape)
        times = {k: [] for k in mods}
        with torch.no_grad():
            torch.manual_seed(1)
            a = off(x)
            torch.manual_seed(1)
            b = on(x)
            diff = ((a - b).abs().max() / a.abs().max()).item()
            for m in mods.values():  # warm-up: compiles
                m(x)
            for _ in range(args.repeat):
                for name, m in mods.items():
                    torch.manual_seed(1)  # specs that draw (hamnet's random bases) draw the same for both
                    t = time.perf_counter()
                    m(x)
                    times[name].append((time.perf_counter() - t) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        vals = (
            [med[c] for c in cols] + [med["on"] / med["off"]] + ([med["on+c"] / med["off+c"]] if args.compiled else [])
        )
        stats = on.meta["compiled"].stats[extra_pass]
        n = sum(stats.values()) if counter is None else stats.get(counter, 0)
        cells = (
            " ".join(f"{v:9.1f}" for v in vals[: len(cols)]) + " " + " ".join(f"{v:9.2f}" for v in vals[len(cols) :])
        )
        print(f"{label:48s} {cells}  {n:8d}  {diff:.2e}", flush=True)
