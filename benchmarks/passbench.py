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


def run(cases, extra_pass: str, counter: str, description: str):
    """Time each (label, spec, params, input shape) off and on; `counter` is the pass's rewrite count."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default=None, help="run the cases whose label contains this")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(
        f"# torch {torch.__version__}, {torch.get_num_threads()} thread, eval fp32, median of {args.repeat} "
        "alternating runs, ms"
    )
    print(f"{'case':48s} {'off ms':>9s} {'on ms':>9s} {'on/off':>7s}  rewrites  rel diff")
    for label, spec, params, shape in cases:
        if args.only and args.only not in label:
            continue
        torch.manual_seed(0)
        off = attndsl.build(spec, **params).eval()
        on = attndsl.build(spec, passes=DEFAULT_PIPELINE + [extra_pass], **params).eval()
        on.load_state_dict(off.state_dict())
        x = torch.randn(*shape)
        times = {"off": [], "on": []}
        with torch.no_grad():
            torch.manual_seed(1)
            a = off(x)
            torch.manual_seed(1)
            b = on(x)
            diff = ((a - b).abs().max() / a.abs().max()).item()
            for _ in range(args.repeat):
                for name, m in (("off", off), ("on", on)):
                    torch.manual_seed(1)  # specs that draw (hamnet's random bases) draw the same for both
                    t = time.perf_counter()
                    m(x)
                    times[name].append((time.perf_counter() - t) * 1e3)
        t_off, t_on = statistics.median(times["off"]), statistics.median(times["on"])
        n = on.meta["compiled"].stats[extra_pass][counter]
        print(f"{label:48s} {t_off:9.1f} {t_on:9.1f} {t_on / t_off:7.2f}  {n:8d}  {diff:.2e}", flush=True)
