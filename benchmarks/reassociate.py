"""The reassociate pass at a realistic size: each affected case built with the pass off and on, timed in
alternation (eval forward, fp32, one thread). Prints one row per case; see RESULTS.md.

    OMP_NUM_THREADS=1 python benchmarks/reassociate.py --repeat 5
"""
import argparse
import statistics
import time

import torch

import attndsl
from attndsl.passes import DEFAULT_PIPELINE
from attndsl.spec import load_spec

# linear attention (no softmax): the chain the pass is for; [B, N, C] tokens of a 56 x 56 map
LINEAR_ATTENTION = """name: linear_attention
title: Linear attention without softmax
family: spatial
paper: "none"
params:
  channels: {type: int, default: 256}
  d: {type: int, default: 32}
inputs:
  x: [B, N, channels]
g: |
  fq = linear(channels, d)
  fk = linear(channels, d)
  fv = linear(channels, d)
f: |
  y = (fq(x) @ transpose(fk(x), 1, 2)) @ fv(x)
outputs: [y]
example: {params: {channels: 256}, inputs: {x: [2, 49, 256]}}
"""

CASES = [  # (label, spec, params, input shape)
    ("linear attention d=32, N=3136", load_spec("linear_attention.yaml", LINEAR_ATTENTION), {},
     (8, 3136, 256)),
    ("hamnet d=1 (ham_channels=groups=4, rank 3)", "hamnet",
     {"channels": 256, "ham_channels": 4, "groups": 4, "rank": 3}, (8, 256, 56, 56)),
    ("hamnet official widths (pass keeps all)", "hamnet", {"channels": 256}, (8, 256, 56, 56)),
    ("a2net (pass keeps its chain)", "a2net", {"channels": 256}, (8, 256, 56, 56)),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default=None, help="run the cases whose label contains this")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread, eval fp32, median of {args.repeat} "
          "alternating runs, ms")
    print(f"{'case':48s} {'off ms':>9s} {'on ms':>9s} {'on/off':>7s}  rewrites  rel diff")
    for label, spec, params, shape in CASES:
        if args.only and args.only not in label:
            continue
        torch.manual_seed(0)
        off = attndsl.build(spec, **params).eval()
        on = attndsl.build(spec, passes=DEFAULT_PIPELINE + ["reassociate"], **params).eval()
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
                    torch.manual_seed(1)        # hamnet draws random bases: the same for both
                    t = time.perf_counter()
                    m(x)
                    times[name].append((time.perf_counter() - t) * 1e3)
        t_off, t_on = statistics.median(times["off"]), statistics.median(times["on"])
        n = on.meta["compiled"].stats["reassociate"]["reassociated"]
        print(f"{label:48s} {t_off:9.1f} {t_on:9.1f} {t_on / t_off:7.2f}  {n:8d}  {diff:.2e}", flush=True)


if __name__ == "__main__":
    main()
