"""The fuse_attention pass on the forms it gained beyond softmax(q k^T) v: MaxViT's windows and grids above
4-D and SASA's local windows written with einsum, pass off vs on, timed in alternation (eval forward, fp32),
eager and under torch.compile. Prints one row per case; see RESULTS.md.

    python benchmarks/fuse_attention.py --threads 2 --compiled --repeat 5
"""

from passbench import run

CASES = [  # (label, spec, params, input shape): the stage-1 maps of maxvit_tiny_rw_224 and a SASA ResNet-50
    ("maxvit block, 7x7 windows, 32x56x56x64", "maxvit", {"channels": 64, "partition": "block"}, (32, 56, 56, 64)),
    ("maxvit grid, 7x7 grid, 32x56x56x64", "maxvit", {"channels": 64, "partition": "grid"}, (32, 56, 56, 64)),
    ("sasa 7x7 windows, 8 heads, 8x64x56x56", "sasa", {"channels": 64}, (8, 64, 56, 56)),
]


def main():
    run(CASES, "fuse_attention", None, __doc__, in_default=True)


if __name__ == "__main__":
    main()
