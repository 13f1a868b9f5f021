"""attndsl vs timm's attention layers at the feature-map sizes a ResNet-50 sees.

    python benchmarks/realsize.py [--quick] [--only senet,cbam] [--threads 2] [--markdown]
                                  [--references] [--budget 4]

Every layer timm implements and a spec converts from (the specs' `convert` sections) is built
as timm's module at an explicit configuration, and the attndsl block is made from it with
`attndsl.checkpoints.from_module` (same configuration, same weights), then rebuilt with
`attndsl.build` so that the module timed is exactly what `build` returns. Before timing, the two
are checked to agree on the benchmark input (eval); a configuration that disagrees is an error.
`--references` adds the specs timm lacks whose one input is a [B, channels, H, W] feature map,
against their eager reference in tests/reference (weights transferred as the oracle tests do).

The transformer-style blocks timm converts from (maxvit, pvt_v2, efficientvit, focal_modulation,
outlook_attention) do not take a ResNet-50 map: each is timed at the map its backbone gives it at a 224
input (StageLayer: batch 32, the layout timm's module takes), in their own tables ("--shapes stages",
on by default; `--only` takes a row name or a spec name for all of its rows). Where timm's module is
called differently from the spec (PVT v2's tokens and feat_size; MaxViT's AttentionCl on windows cut
by its PartitionAttentionCl) a small adapter module around it is the "other" side, see the notes.

Columns: attndsl eager (the fx.GraphModule), attndsl under torch.compile, the other
implementation eager and compiled; eval forward under no_grad, and training forward+backward
(train mode, input requiring grad, loss = sum of the output, parameter grads reset each step) at a
smaller batch (TRAIN_BATCH) so that the run fits in ~12 minutes on 2 cores. All columns of a row run
in alternation (one repetition of each, round-robin) on the same input tensor, so machine load hits
them alike; each cell is the median of the repetitions (at least MIN_REPS, more while the row's
time budget lasts). For gate-style blocks the eval table also times, in the same alternation,
attndsl with `inplace=True` (eager and compiled, the input restored before each repetition, outside
the timed region) and two floors: `rw`, one read and one write of x into a preallocated buffer
(`torch.mul(x, 1.0, out=buf)`), and `clone`, a read into a fresh tensor (page faults included).

Peak memory: torch.profiler's memory accounting (profile_memory=True) records every allocation
and free of the CPU allocator, also inside inductor's generated code, in order; the peak is the
largest running sum over one step, i.e. the largest amount of tensor memory the step held at once
beyond what existed before it (the input and the weights), output and saved activations included.
Unlike RSS it is not blurred by malloc caching or by other processes, and it needs no subprocess
per configuration (each would pay the compiles again). It counts tensor bytes, not Python objects.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import importlib
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import attndsl  # noqa: E402
from attndsl.checkpoints import from_module  # noqa: E402

# (batch, channels, height, width): ResNet-50's layer1 output and layer3 output
SHAPES = {"56": (32, 256, 56, 56), "14": (32, 1024, 14, 14)}
QUICK_SHAPES = {"56": (2, 32, 12, 12), "14": (2, 64, 6, 6)}
TRAIN_BATCH, QUICK_TRAIN_BATCH = 8, 2
MIN_REPS, MAX_REPS = 3, 25


def _timm_layers():
    from timm.layers import EcaModule, GatherExcite, GlobalContext, NonLocalAttn, SelectiveKernel, SEModule, SplitAttn
    from timm.layers.cbam import CbamModule
    from timm.layers.coord_attn import CoordAttn
    from timm.layers.mlp import ConvMlp

    def ge(c):
        # timm 1.0.x cannot build GatherExcite's MLP itself (ConvMlp(..., *dd)): build it without,
        # then give it the ConvMlp its constructor would have made
        m = GatherExcite(c, use_mlp=False)
        m.mlp = ConvMlp(c, max(1, round(c / 16)), act_layer=nn.ReLU)
        return m

    # spec: (timm module for C channels, how its configuration was matched)
    return {
        "senet": (lambda c: SEModule(c), "SEModule(C): r = 16, timm's width C/16 is a multiple of 8 here"),
        "ecanet": (lambda c: EcaModule(c), "EcaModule(C): adaptive k (gamma 2, b 1), k read off timm's conv"),
        "cbam": (lambda c: CbamModule(c), "CbamModule(C): bias-free MLP, spatial pools (mean, max), conv+BN"),
        "coordinate_attention": (lambda c: CoordAttn(c), "CoordAttn(C): h-swish, bias-free convs, BN"),
        "gcnet": (
            lambda c: GlobalContext(c, fuse_add=True, fuse_scale=False),
            "GlobalContext(C, fuse_add, no scale): the paper's channel_add fusion, LN eps 1e-6",
        ),
        "resnest": (
            lambda c: SplitAttn(c, c, kernel_size=3, radix=2, groups=1, norm_layer=nn.BatchNorm2d),
            "SplitAttn(C, C, 3x3, radix 2, cardinality 1, BN as in resnest*), hidden from timm's rd_ratio 1/4",
        ),
        "sknet": (
            lambda c: SelectiveKernel(c, c, groups=min(32, c // 4)),  # --quick: fewer channels
            "SelectiveKernel(C, C, groups=32): two paths (3x3, 3x3 dil. 2), input split, 32 groups both sides",
        ),
        "non_local": (
            lambda c: NonLocalAttn(c),
            "NonLocalAttn(C): no sub-sampling (N = HW), C/8 inner width, logits scaled by C^-1/2",
        ),
        "genet": (ge, "GatherExcite(C) global extent with its ConvMlp (timm's default form)"),
    }


GATES = {"senet", "ecanet", "genet", "gcnet", "cbam", "coordinate_attention"}  # candidates for inplace=True


@dataclass(frozen=True)
class StageLayer:
    """A timm block at the size its backbone gives it; these rows form their own tables ("stages")."""

    spec: str
    shape: tuple  # the input a row times (batch 32): the stage's map in the layout timm's module takes
    quick: tuple  # --quick: same configuration, batch 2 and a small map
    build: Callable  # () -> (module timed as "timm", the timm module from_module converts)
    timm_model: str  # the backbone and where the module sits in it (tests compare the configuration)
    timm_path: str
    note: str
    convert: dict = field(default_factory=dict)  # extra from_module parameters


class TokensOnGrid(nn.Module):
    """timm's PVT v2 Attention (tokens [B, N, C] and feat_size) on the spec's [B, H, W, C]: both reshapes are views."""

    def __init__(self, attn: nn.Module):
        super().__init__()
        self.attn = attn

    def forward(self, x):
        b, h, w, c = x.shape
        return self.attn(x.view(b, h * w, c), [h, w]).view(b, h, w, c)


class PartitionedAttention(nn.Module):
    """timm's own partition, AttentionCl on the [B', P, P, C] windows, reverse: PartitionAttentionCl's
    `_partition_attn` without the norm, MLP and residual around it."""

    def __init__(self, attn: nn.Module, partition: str, size: int):
        super().__init__()
        from timm.models.maxxvit import grid_partition, grid_reverse, window_partition, window_reverse

        self.attn, self.size = attn, (size, size)
        self.cut, self.put = (
            (window_partition, window_reverse) if partition == "block" else (grid_partition, grid_reverse)
        )

    def forward(self, x):
        return self.put(self.attn(self.cut(x, self.size)), self.size, x.shape[1:3])


def _maxvit(partition: str):
    from dataclasses import replace

    from timm.models.maxxvit import PartitionAttentionCl, model_cfgs

    # maxvit_tiny_rw's transformer config, with the 7 x 7 window and grid a 224 input gives (224 / partition_ratio 32)
    cfg = replace(model_cfgs["maxvit_tiny_rw"].transformer_cfg, window_size=(7, 7), grid_size=(7, 7))
    attn = PartitionAttentionCl(64, partition_type=partition, cfg=cfg).attn
    return PartitionedAttention(attn, partition, 7), attn


def _pvt(channels: int, heads: int, sr: int):
    from timm.models.pvt_v2 import Attention

    attn = Attention(channels, num_heads=heads, sr_ratio=sr, qkv_bias=True)
    return TokensOnGrid(attn), attn


def _single(make):
    def build():
        m = make()
        return m, m

    return build


@functools.cache
def _stage_layers() -> dict:
    """Row name: StageLayer. Each configuration was read off timm's model definition (tests check it)."""
    from timm.models.efficientvit_mit import EfficientVitBlock
    from timm.models.focalnet import FocalModulation
    from timm.models.volo import OutlookAttention

    sdpa = "timm's fused_attn default (SDPA)"
    maxvit = (
        "maxvit_tiny_rw_224 stage 1 (64 ch, 56x56): AttentionCl dim_head 32 (2 heads), head_first, RelPosBias, "
        "biases, P = 7, {}; timm side = timm's {} + AttentionCl + reverse ({}), no norm/MLP/residual"
    )
    rows = {
        f"maxvit_{part}": StageLayer(
            "maxvit",
            (32, 56, 56, 64),
            (2, 14, 14, 64),
            lambda part=part: _maxvit(part),
            "maxvit_tiny_rw_224",
            f"stages.0.blocks.0.attn_{part}.attn",
            maxvit.format(f"{part} attention", cut, sdpa),
            {"partition": part},
        )
        for part, cut in (("block", "window_partition"), ("grid", "grid_partition"))
    }
    pvt = (
        "pvt_v2_b2 stage {} ({} ch, {}x{} tokens): Attention({}, {}, sr_ratio {}, qkv_bias), {}; timm side takes "
        "x [B, H, W, C] as its tokens [B, HW, C] and feat_size (views both ways)"
    )
    rows |= {
        f"pvt_v2_s{stage}": StageLayer(
            "pvt_v2",
            (32, hw, hw, c),
            (2, q, q, c),
            lambda c=c, heads=heads, sr=sr: _pvt(c, heads, sr),
            "pvt_v2_b2",
            f"stages.{stage - 1}.blocks.0.attn",
            pvt.format(stage, c, hw, hw, c, f"{heads} head{'s' if heads > 1 else ''}", sr, sdpa),
        )
        for stage, c, hw, q, heads, sr in ((1, 64, 56, 16, 1, 8), (3, 320, 14, 8, 5, 2))
    }
    rows |= {
        "efficientvit": StageLayer(
            "efficientvit",
            (32, 128, 14, 14),
            (2, 128, 7, 7),
            _single(lambda: EfficientVitBlock(128, head_dim=16).context_module.main),
            "efficientvit_b1",
            "stages.2.blocks.1.context_module.main",
            "efficientvit_b1 stage 3 (128 ch, 14x14 at 224): LiteMLA as EfficientVitBlock(128, head_dim 16) "
            "builds it: 8 heads of 16, one 5x5 scale, no biases, BN after proj, eps 1e-5",
        ),
        "focal_modulation": StageLayer(
            "focal_modulation",
            (32, 96, 56, 56),
            (2, 96, 8, 8),
            _single(lambda: FocalModulation(96, focal_window=3, focal_level=2)),
            "focalnet_tiny_srf",
            "layers.0.blocks.0.modulation",
            "focalnet_tiny_srf stage 1 (96 ch, 56x56, NCHW): FocalModulation focal_level 2, window 3, factor 2 "
            "(kernels 3, 5), biases, no post norm, not normalised; attndsl layout channels_first",
        ),
        "outlook_attention": StageLayer(
            "outlook_attention",
            (32, 28, 28, 192),
            (2, 8, 8, 192),
            _single(lambda: OutlookAttention(192, 6, kernel_size=3, padding=1, stride=2, qkv_bias=False)),
            "volo_d1_224",
            "network.0.0.attn",
            "volo_d1_224 stage 1 outlooker (192 ch, 28x28 channels-last): OutlookAttention 6 heads, K 3, "
            "padding 1, stride 2, no v bias",
        ),
    }
    return rows


class Progress:
    """A one-line progress bar on stderr: done/total steps, elapsed time, the current step."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.done, self.t0, self.enabled = total, 0, time.perf_counter(), enabled

    def show(self, what: str) -> None:
        if not self.enabled:
            return
        width = 30
        fill = int(width * self.done / max(1, self.total))
        el = time.perf_counter() - self.t0
        sys.stderr.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} {el:6.0f}s {what[:40]:<40}")
        sys.stderr.flush()

    def step(self, what: str = "") -> None:
        self.done += 1
        self.show(what)

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _rebuild(name: str, block: nn.Module, **kw) -> nn.Module:
    """`attndsl.build` at the converted block's parameters, with its weights."""
    params = block.params if hasattr(block, "params") else block.meta["compiled"].params  # layer() or build()
    gm = attndsl.build(name, **params, **kw)
    gm.load_state_dict(block.state_dict())
    return gm


# reference rows whose example parameters need a change or a word at x's shape: (params for the shape, note)
REFERENCE_CONFIG = {
    "rga": (
        lambda b, c, h, w: {"down_ratio": min(8, 1 + min(c, h * w) // 8)},
        "official ratios 8; at --quick sizes down_ratio 1 + min(C, HW)/8, where 8 would leave the MLP W no unit",
    ),
    "vit": (
        lambda b, c, h, w: {"patch_size": max(1, h // 14)},
        "one encoder block (D 64) on ViT-B/16's 14 x 14 patch grid of the map (H/14-pixel patches, 1 below H = 14)",
    ),
}


def _size_params(spec, shape):
    """The parameters that x's declared H, W are (span_h, feat_size[0], ...) set to the benchmark's H, W; the note."""
    params, words = {}, {}
    for axis, dim, size in zip("HW", spec.inputs["x"][2:], shape[2:]):
        m = re.match(r"(\w+)(?:\[(\d)\])?", str(dim))
        if m and m[1] in spec.params:
            if m[2] is None:
                params[m[1]] = size
                words.setdefault(m[1], axis)
            else:
                params.setdefault(m[1], [0, 0])[int(m[2])] = size
                words[m[1]] = "[H, W]"
    return params, "".join(f", {k} = {w}" for k, w in words.items())


def _reference_pair(name: str, shape):
    """(attndsl block, eager reference, note) with shared weights, for a spec timm lacks."""
    from tests.oracle import randomize, transfer

    spec = attndsl.pipeline.load(name)
    params = dict(spec.example.get("params") or {})
    sized, sized_note = _size_params(spec, shape)
    config, extra = REFERENCE_CONFIG.get(name, (lambda *shape: {}, ""))
    params.update(channels=shape[1], **sized, **config(*shape))
    torch.manual_seed(0)
    gm = attndsl.build(name, **params)
    randomize(gm)
    test = importlib.import_module(f"tests.specs.test_{name}")
    if hasattr(test, "reference_for"):  # the oracle test's own construction and weight mapping
        ref = test.reference_for(gm)
    else:
        ref = importlib.import_module(f"tests.reference.{name}").Reference(**gm.meta["compiled"].params)
        transfer(gm, ref, getattr(test, "KEY_MAP", None))
    note = f"vs tests/reference (spec's example parameters, channels = C{sized_note}{'; ' if extra else ''}{extra})"
    return gm, ref, note


def reference_specs() -> list[str]:
    """Specs without a timm layer whose only input is x: [B, channels, H, W] (or *S) and that have a reference."""
    out = []
    timm_names = set(_timm_layers()) | {lay.spec for lay in _stage_layers().values()}
    root = Path(__file__).resolve().parent.parent / "tests"
    for name in sorted(attndsl.all_specs()):
        if name in timm_names or not (root / "reference" / f"{name}.py").exists():
            continue
        spec = attndsl.pipeline.load(name)
        ins = spec.example["inputs"]
        if list(ins) != ["x"] or len(ins["x"]) != 4 or "channels" not in spec.params:
            continue
        shape_src = "\n".join(spec.lines)
        if "channels" in shape_src and ("x: [B, channels" in shape_src):
            out.append(name)
    return out


def make_pair(name: str, shape, other: str):
    """(attndsl block, other implementation, note), both eval, same weights."""
    stages = _stage_layers()
    if name in stages:
        lay = stages[name]
        torch.manual_seed(0)
        om, src = lay.build()
        _randomize_stats(om)
        om.eval()
        gm = _rebuild(lay.spec, from_module(src, **lay.convert)).eval()
        return gm, om, lay.note
    if other == "timm":
        factory, note = _timm_layers()[name]
        torch.manual_seed(0)
        tm = factory(shape[1])
        _randomize_stats(tm)
        tm.eval()
        gm = _rebuild(name, from_module(tm, input_shape=shape)).eval()
        return gm, tm, note
    gm, ref, note = _reference_pair(name, shape)
    return gm.eval(), ref.eval(), note


def _randomize_stats(m: nn.Module) -> None:
    """BN statistics away from (0, 1): an identity-like BN would hide a mismatch."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.running_mean.copy_(torch.rand(mod.running_mean.shape, generator=g) * 0.2 - 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)


def _grad_reset(mods):
    ps = [p for m in mods for p in m.parameters()]

    def reset():
        for p in ps:
            p.grad = None

    return reset


def eval_step(module, x):
    def run():
        with torch.no_grad():
            module(x)

    return run


def train_step(module, x):
    params = list(module.parameters())

    def run():
        for p in params:
            p.grad = None
        x.grad = None
        out = module(x)
        out = out if isinstance(out, torch.Tensor) else out[0]
        out.sum().backward()

    return run


def inplace_step(module, x, saved):
    """(setup, run): the input is restored from `saved` before each repetition, outside the timing."""

    def setup():
        x.copy_(saved)

    def run():
        with torch.no_grad():
            module(x)

    return setup, run


def timed(cells: dict, budget_s: float, progress=None, label="") -> dict:
    """Median ms per cell, one repetition of each in turn; cells map a column to run or (setup, run)."""
    fns = {k: (v if isinstance(v, tuple) else (None, v)) for k, v in cells.items()}
    for setup, run in fns.values():  # warm-up: compiles, first-touch page faults
        for _ in range(2):
            if setup:
                setup()
            run()
    times = {k: [] for k in fns}
    t0 = time.perf_counter()
    while True:
        for k, (setup, run) in fns.items():
            if setup:
                setup()
            s = time.perf_counter()
            run()
            times[k].append((time.perf_counter() - s) * 1e3)
        n = len(next(iter(times.values())))
        if progress:
            progress.show(f"{label} rep {n}")
        if n >= MAX_REPS or (n >= MIN_REPS and time.perf_counter() - t0 > budget_s):
            break
    return {k: statistics.median(v) for k, v in times.items()}


def peak_bytes(run) -> int:
    """Largest tensor memory held at once during run() beyond what existed before (profiler accounting)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    saved = os.dup(2)  # kineto prints its start/stop on fd 2 whatever the log level
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                run()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    # every allocation and free, with the allocator's running total after it
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        n = stack.pop()
        if n.tag == _EventType.Allocation:
            events.append((n.start_time_ns, n.extra_fields.alloc_size, n.extra_fields.total_allocated))
        stack.extend(n.children)
    if not events:
        return 0
    events.sort()
    base = events[0][2] - events[0][1]
    return max(0, max(total for _, _, total in events) - base)


class Disagreement(Exception):
    """attndsl and the implementation it is timed against compute different things on the benchmark input."""


def _check_agree(gm, other, x, name):
    with torch.no_grad():
        a, b = gm(x), other(x)
    a = a if isinstance(a, torch.Tensor) else a[0]
    b = b if isinstance(b, torch.Tensor) else b[0]
    tol = 1e-3 * max(1.0, b.abs().max().item())
    err = (a - b).abs().max().item()
    if not err <= tol:
        raise Disagreement(f"{name}: attndsl and its counterpart disagree at {list(x.shape)}: max diff {err:.3g}")


def run_row(name, other, shape, mode, args, progress) -> dict:
    torch.manual_seed(0)
    gm, om, note = make_pair(name, shape, other)
    if mode == "train":
        shape = (args.train_batch,) + tuple(shape[1:])
    x = torch.randn(shape)
    if mode == "eval":
        _check_agree(gm, om, x, name)
    # dynamic=False: one specialisation per shape. A module class seen at a second shape (the train rows'
    # smaller batch) would otherwise be recompiled with dynamic sizes, where inductor 2.14 fails on
    # non_local's backward ("cannot determine truth value of Relational")
    compiled = (lambda m: m) if args.no_compile else (lambda m: torch.compile(m, dynamic=False))
    mods = {"attndsl": gm, "attndsl+c": compiled(gm), "other": om, "other+c": compiled(om)}
    cells = {}
    if mode == "eval":
        cells = {k: eval_step(m, x) for k, m in mods.items()}
    else:
        for m in (gm, om):
            m.train()
        xg = x.clone().requires_grad_()
        cells = {k: train_step(m, xg) for k, m in mods.items()}
    ip = None
    if mode == "eval" and name in GATES and other == "timm":
        ip = _rebuild(name, gm, inplace=True).eval() if _has_inplace() else None
    if ip is not None:
        xi, saved = x.clone(), x.clone()
        cells["inplace"] = inplace_step(ip, xi, saved)
        cells["inplace+c"] = inplace_step(compiled(ip), xi, saved)
        buf = torch.empty_like(x)
        cells["rw"] = lambda: torch.mul(x, 1.0, out=buf)
        cells["clone"] = lambda: x.clone()
    label = f"{name} {'x'.join(map(str, shape))} {mode}"
    progress.show(label + " compiling")
    t = timed(cells, args.budget, progress, label)
    mem = {}
    for k in ("attndsl", "attndsl+c", "other", "other+c"):
        mem[k] = peak_bytes(cells[k])
    if ip is not None:
        s, r = cells["inplace"]
        s()
        mem["inplace"] = peak_bytes(r)
    progress.step(label)
    del mods, cells
    gc.collect()
    return {
        "name": name,
        "other": other,
        "stage": name in _stage_layers(),
        "shape": shape,
        "mode": mode,
        "ms": t,
        "mem": mem,
        "note": note,
        "x_bytes": x.numel() * x.element_size(),
    }


_INPLACE = None


def _has_inplace() -> bool:
    global _INPLACE
    if _INPLACE is None:
        import inspect

        _INPLACE = "inplace" in inspect.signature(attndsl.build).parameters
    return _INPLACE


def geomean(xs):
    xs = [x for x in xs if x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def _mib(b):
    return b / 2**20


def _fmt_ms(v: float) -> str:
    """Milliseconds: one decimal at real sizes, three places below 1 ms (the --quick shapes)."""
    return f"{v:.1f}" if v >= 1 else f"{v:.3f}"


def _fmt_mib(b):
    return f"{_mib(b):.0f}" if b >= 2**24 else f"{_mib(b):.2f}"


def report(rows, args, load_note, markdown: bool) -> str:
    out = []
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    import timm

    cpu = _cpu_model()
    head = (
        f"machine: {cpu}, {_cores()} cores, {args.threads} threads; torch {torch.__version__}, timm {timm.__version__}; "
        f"{stamp}; load average at start {load_note}"
    )
    out.append(head)
    groups = {}
    for r in rows:  # the stage rows each have their own shape: one table per mode
        groups.setdefault((r["mode"], "stages" if r["stage"] else r["shape"]), []).append(r)
    for (mode, shape), rs in groups.items():
        what = "eval forward" if mode == "eval" else "train forward+backward"
        stages = shape == "stages"
        if stages:
            title = f"timm blocks at their backbones' stage sizes, {what} (median ms; peak MiB beyond the input)"
        else:
            title = f"{what}, x = {'x'.join(map(str, shape))} (median ms; peak MiB beyond the input)"
        extra = any("inplace" in r["ms"] for r in rs)
        cols = [
            "layer",
            "vs",
            *(["x"] if stages else []),
            "attndsl",
            "attndsl+c",
            "other",
            "other+c",
            "eager ratio",
            "compiled ratio",
            "MiB attndsl",
            "MiB attndsl+c",
            "MiB other",
            "MiB other+c",
        ]
        if extra:
            cols += ["inplace", "inplace+c", "rw", "clone", "MiB inplace"]
        lines = []
        for r in rs:
            t, m = r["ms"], r["mem"]
            cells = [
                r["name"],
                r["other"],
                *(["x".join(map(str, r["shape"]))] if stages else []),
                _fmt_ms(t["attndsl"]),
                _fmt_ms(t["attndsl+c"]),
                _fmt_ms(t["other"]),
                _fmt_ms(t["other+c"]),
                f"{t['attndsl'] / t['other']:.2f}",
                f"{t['attndsl+c'] / t['other+c']:.2f}",
            ]
            cells += [_fmt_mib(m[k]) for k in ("attndsl", "attndsl+c", "other", "other+c")]
            if extra:
                if "inplace" in t:
                    cells += [
                        _fmt_ms(t["inplace"]),
                        _fmt_ms(t["inplace+c"]),
                        _fmt_ms(t["rw"]),
                        _fmt_ms(t["clone"]),
                        _fmt_mib(m["inplace"]),
                    ]
                else:
                    cells += ["", "", "", "", ""]
            lines.append(cells)
        summaries = []
        for kind in ("timm", "reference"):
            tr = [r for r in rs if r["other"] == kind]
            if tr:
                gm_e = geomean([r["ms"]["attndsl"] / r["ms"]["other"] for r in tr])
                gm_c = geomean([r["ms"]["attndsl+c"] / r["ms"]["other+c"] for r in tr])
                summaries.append(
                    f"geomean over the {len(tr)} {kind} {'blocks' if stages else 'layers'}: attndsl/{kind} eager {gm_e:.2f}, "
                    f"attndsl-compiled/{kind}-compiled {gm_c:.2f}"
                )
        summary = "\n\n".join(summaries)
        out.append("")
        out.append(("### " if markdown else "") + title)
        out.append("")
        if markdown:
            out.append("| " + " | ".join(cols) + " |")
            out.append("|" + "---|" * len(cols))
            out += ["| " + " | ".join(c) + " |" for c in lines]
        else:
            w = [max(len(c), *(len(li[i]) for li in lines)) for i, c in enumerate(cols)]
            out.append("  ".join(c.rjust(w[i]) for i, c in enumerate(cols)))
            out += ["  ".join(c.rjust(w[i]) for i, c in enumerate(li)) for li in lines]
        out.append("")
        out.append(summary)
    out.append("")
    out.append(
        "Configurations (timm rows: attndsl's parameters come from timm's module via from_module; reference rows:"
        " the spec's example parameters at the map's sizes, the reference built by its oracle test):"
    )
    seen = set()
    for r in rows:
        if r["name"] not in seen:
            seen.add(r["name"])
            out.append(f"{'- ' if markdown else '  '}{r['name']}: {r['note']}")
    nl = [r for r in rows if r["name"] == "non_local" and r["mode"] == "eval"]
    for r in nl:
        b, _, h, w = r["shape"]
        n = h * w
        nn_bytes = b * n * n * 4
        out.append(
            f"non_local at N={n}: one N x N float32 map for the batch is {_fmt_mib(nn_bytes)} MiB; peak beyond "
            f"the input: attndsl {_fmt_mib(r['mem']['attndsl'])}, attndsl+c {_fmt_mib(r['mem']['attndsl+c'])}, "
            f"timm {_fmt_mib(r['mem']['other'])}, timm+c {_fmt_mib(r['mem']['other+c'])} MiB (x is "
            f"{_fmt_mib(r['x_bytes'])} MiB)"
        )
    return "\n".join(out)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes and a short budget: seconds, for the tests")
    ap.add_argument("--only", default="", help="comma-separated spec names")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    ap.add_argument("--references", action="store_true", help="also the specs timm lacks, vs tests/reference")
    ap.add_argument("--budget", type=float, default=None, help="seconds of timing per row (after warm-up)")
    ap.add_argument("--modes", default="eval,train")
    ap.add_argument(
        "--shapes",
        default="56,14,stages",
        help="which of 56 (32x256x56x56), 14 (32x1024x14x14) and stages (the blocks at their own stage sizes)",
    )
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="the +c columns run eager (a smoke test of the script)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    args.train_batch = QUICK_TRAIN_BATCH if args.quick else TRAIN_BATCH
    if args.budget is None:
        args.budget = 0.2 if args.quick else 3.0
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    timm_names, stages = list(_timm_layers()), _stage_layers()
    ref_names = reference_specs() if (args.references or names) else []
    jobs, stage_jobs = [], []
    for n in names or timm_names + list(stages) + ref_names:
        of_spec = [k for k, lay in stages.items() if lay.spec == n]  # a spec name: all its stage rows
        if n in timm_names:
            jobs.append((n, "timm"))
        elif n in stages or of_spec:
            stage_jobs += [k for k in of_spec or [n] if k not in stage_jobs]
        elif n in ref_names:
            jobs.append((n, "reference"))
        else:
            ap.error(
                f"{n}: neither a timm layer nor a spec with a [B, channels, H, W] reference "
                f"(timm: {', '.join(timm_names + list(stages))})"
            )
    load_note = f"{os.getloadavg()[0]:.2f}"
    picked = args.shapes.split(",")
    todo = []
    for m in args.modes.split(","):
        todo += [(n, o, shapes[s], m) for s in picked if s != "stages" for n, o in jobs]
        if "stages" in picked:
            todo += [(n, "timm", stages[n].quick if args.quick else stages[n].shape, m) for n in stage_jobs]
    progress = Progress(len(todo), enabled=not args.no_progress)
    rows, skipped = [], []
    for name, other, shape, mode in todo:
        try:
            rows.append(run_row(name, other, shape, mode, args, progress))
        except Exception as e:
            if other == "timm":  # a timm layer must run; a reference the generic transfer cannot map is reported
                raise
            skipped.append(
                f"- {name} ({mode}, {'x'.join(map(str, shape))}): not measured, {type(e).__name__}: "
                f"{str(e).splitlines()[0][:160]}"
            )
            progress.step(f"{name} skipped")
    progress.close()
    if rows:
        print(report(rows, args, load_note, args.markdown))
    print("\n".join(skipped))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except Disagreement as e:
        raise SystemExit(str(e)) from None
