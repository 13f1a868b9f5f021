"""The fuse_attention pass on MaxViT's windows and grids above 4-D, pass off vs on, timed in alternation (eval
forward, fp32), eager and under torch.compile. Prints one row per case; see RESULTS.md (which also has the
SASA row measured while the pass fused its one-query windows).

    python benchmarks/fuse_attention.py --threads 2 --compiled --repeat 5
"""

from passbench import run

CASES = [  # (label, spec, params, input shape): the stage-1 map of maxvit_tiny_rw_224
    ("maxvit block, 7x7 windows, 32x56x56x64", "maxvit", {"channels": 64, "partition": "block"}, (32, 56, 56, 64)),
    ("maxvit grid, 7x7 grid, 32x56x56x64", "maxvit", {"channels": 64, "partition": "grid"}, (32, 56, 56, 64)),
]


def main():
    run(CASES, "fuse_attention", None, __doc__, in_default=True)


if __name__ == "__main__":
    main()
