"""The fuse_projections pass at realistic sizes: parallel projections of one input (θ/φ/g, q/k/v) as
one product and a split, pass off vs on, timed in alternation (eval forward, fp32, one thread).
Prints one row per case; see RESULTS.md.

    OMP_NUM_THREADS=1 python benchmarks/fuse_projections.py --repeat 5
"""

from passbench import run

CASES = [  # (label, spec, params, input shape): ResNet-50 stage sizes, PVT v2 stage-1 tokens
    ("non_local theta/phi (2 convs), 8x256x28x28", "non_local", {"channels": 256}, (8, 256, 28, 28)),
    ("danet q/k/v (3 convs), 8x256x28x28", "danet", {"channels": 256}, (8, 256, 28, 28)),
    ("ccnet q/k/v x2 recurrences, 8x256x28x28", "ccnet", {"channels": 256}, (8, 256, 28, 28)),
    ("pvt_v2 R=1 q/kv (2 linears), 8x28x28x64", "pvt_v2", {"channels": 64, "sr_ratio": 1}, (8, 28, 28, 64)),
]


def main():
    run(CASES, "fuse_projections", "fused", __doc__)


if __name__ == "__main__":
    main()
