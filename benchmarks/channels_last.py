"""Channels-last memory format for the convolution-heavy blocks, measured before adopting it.

    python benchmarks/channels_last.py [--only sknet,resnest] [--threads 2] [--budget 4] [--batch 32]

Each timm layer of realsize.py (same configurations, same weights) as an attndsl block, eager and under
torch.compile, with the block and its input in the default (NCHW-contiguous) format and in
torch.channels_last, timm's layer likewise; all eight columns in alternation on one 56 x 56 map
(eval forward). The ratios say whether channels-last pays here: `cl/nchw` below 1 is faster.
"""

import argparse
import copy

import torch
from realsize import SHAPES, _timm_layers, eval_step, make_pair, timed

CONV_HEAVY = ["sknet", "resnest", "cbam", "coordinate_attention", "gcnet", "senet"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", default=",".join(CONV_HEAVY))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=4.0, help="seconds of timing per row (after warm-up)")
    ap.add_argument("--batch", type=int, default=SHAPES["56"][0])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shape = (args.batch,) + SHAPES["56"][1:]
    print(
        f"# torch {torch.__version__}, {args.threads} threads, eval fp32, x = {'x'.join(map(str, shape))}, "
        "median ms of alternating runs"
    )
    print(
        f"{'layer':22s} {'nchw':>8s} {'cl':>8s} {'nchw+c':>8s} {'cl+c':>8s} {'timm+c':>8s} {'timm cl+c':>9s}"
        f" {'cl/nchw':>8s} {'cl/nchw +c':>10s}"
    )
    layers = _timm_layers()
    for name in args.only.split(","):
        if name not in layers:
            raise SystemExit(f"{name}: not one of realsize.py's timm layers")
        gm, tm = make_pair(name, shape, "timm")[:2]
        x = torch.randn(shape)
        xc = x.contiguous(memory_format=torch.channels_last)
        gm_cl = copy.deepcopy(gm).to(memory_format=torch.channels_last)
        tm_cl = copy.deepcopy(tm).to(memory_format=torch.channels_last)
        with torch.no_grad():
            torch.testing.assert_close(gm_cl(xc), gm(x), atol=1e-4, rtol=1e-4)
        cells = {
            "nchw": eval_step(gm, x),
            "cl": eval_step(gm_cl, xc),
            "nchw+c": eval_step(torch.compile(gm), x),
            "cl+c": eval_step(torch.compile(gm_cl), xc),
            "timm+c": eval_step(torch.compile(tm), x),
            "timm cl+c": eval_step(torch.compile(tm_cl), xc),
        }
        t = timed(cells, args.budget)
        print(
            f"{name:22s} {t['nchw']:8.1f} {t['cl']:8.1f} {t['nchw+c']:8.1f} {t['cl+c']:8.1f} {t['timm+c']:8.1f}"
            f" {t['timm cl+c']:9.1f} {t['cl'] / t['nchw']:8.2f} {t['cl+c'] / t['nchw+c']:10.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
