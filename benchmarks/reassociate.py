"""The reassociate pass at a realistic size: each affected case built with the pass off and on, timed in
alternation (eval forward, fp32, one thread). Prints one row per case; see RESULTS.md.

    OMP_NUM_THREADS=1 python benchmarks/reassociate.py --repeat 5
"""

from passbench import run

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
    ("linear attention d=32, N=3136", load_spec("linear_attention.yaml", LINEAR_ATTENTION), {}, (8, 3136, 256)),
    (
        "hamnet d=1 (ham_channels=groups=4, rank 3)",
        "hamnet",
        {"channels": 256, "ham_channels": 4, "groups": 4, "rank": 3},
        (8, 256, 56, 56),
    ),
    ("hamnet official widths (pass keeps all)", "hamnet", {"channels": 256}, (8, 256, 56, 56)),
    ("a2net (pass keeps its chain)", "a2net", {"channels": 256}, (8, 256, 56, 56)),
]


def main():
    run(CASES, "reassociate", "reassociated", __doc__)


if __name__ == "__main__":
    main()
