"""Cost report of a block: parameters, FLOPs/MACs and activation memory at given input shapes.

The compiled graph is run once, node by node (an fx Interpreter, on the meta device
by default: no real arithmetic). Every node gets two counts:

- torch's: `torch.utils.flop_counter.FlopCounterMode` around that node alone; it counts
  matrix products, convolutions and attention (2 FLOPs per multiply-add, bias adds not
  counted) and nothing else;
- attndsl's own, from the node's op family and its concrete shapes (`RULES`, `FAMILIES`).

A node's FLOPs are torch's count where torch counts the op, else attndsl's own; the tests
check that both agree wherever torch counts. MACs are the multiply-accumulate families'
FLOPs halved. Memory: `peak_bytes` is the largest total of intermediate tensors alive at
once in a forward (liveness over the graph; inputs, parameters and buffers excluded; views
share their base's storage), `saved_bytes` what autograd keeps for the backward of a
training-mode forward (parameters excluded). Entry points: `profile`, `Profile`, `FAMILIES`.
"""

from __future__ import annotations

import copy
import math
import operator
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from . import runtime
from .errors import AttnDSLError

# family -> (the convention of its own count, multiply-accumulate?)
FAMILIES = {
    "matmul": ("2 * batch * n * k * m for [.., n, k] @ [.., k, m] (as torch)", True),
    "linear": ("2 * rows * in * out; the bias add is not counted (as torch's addmm)", True),
    "conv": ("2 * output elements * in_channels / groups * kernel volume; bias not counted (as torch)", True),
    "attention": (
        "2 * batch * L * S * (E + Ev) for q [.., L, E], k [.., S, E], v [.., S, Ev] (as torch; its "
        "counter misses the CPU's fused kernel, where this count stands in)",
        True,
    ),
    "einsum": (
        "2 * the product of every subscript's size for two operands (as torch's bmm); one operand: "
        "1 per point of that space (the sum)",
        True,
    ),
    "cov": ("the product only: 2 * batch * d * d * n; centering not counted (as torch)", True),
    "affine_grid": ("2 * 3 * 2 per grid point: the [H*W, 3] @ [3, 2] product (torch does not count it)", True),
    "elementwise": ("1 per output element (arithmetic, activations, comparisons, clamp, where)", False),
    "gate": ("1 per element of s (activation) + 1 per output element (product; 2 for x * (1 + act(s)))", False),
    "normalize": ("3 per element (square, sum, divide)", False),
    "reduction": ("1 per input element (sum, mean, max, min, prod, argmax); logsumexp 3, var/std 3", False),
    "softmax": ("5 per element (max, subtract, exp, sum, divide)", False),
    "pool": ("kernel volume per output element (window pools)", False),
    "adaptive_pool": ("1 per input element (each input element is accumulated once)", False),
    "batchnorm": ("2 per element (scale and shift; running statistics folded)", False),
    "layernorm": ("5 per element (mean, variance, normalise, scale, shift); also group norm", False),
    "interpolate": ("nearest 0; (bi/tri)linear 2 * 2^d per output element (d spatial axes)", False),
    "grid_sample": ("bilinear 8 per output element (4 weighted taps); nearest 0", False),
    "dropout": ("1 per element in training, 0 in eval", False),
    "sampling": ("2 per input element (cumulative sum and comparison)", False),
    "ema": ("3 per buffer element in training (two scalings, one add), 0 in eval", False),
    "free": ("0: shape and data movement, indexing, constants, random numbers", False),
}


def _numel(v) -> int:
    if isinstance(v, torch.Tensor):
        return v.numel()
    if isinstance(v, (list, tuple)):
        return sum(_numel(i) for i in v)
    return 0


def _out(fn):
    """A rule counting `fn(numel of the result)`."""
    return lambda args, kw, out: fn(_numel(out))


def _matmul(args, kw, out):
    a, b = args[0], args[1]
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return 0
    return 2 * _numel(out) * a.shape[-1] if b.dim() > 1 else 2 * _numel(out) * b.shape[0]


def _sdpa(args, kw, out):
    q, k, v = args[:3]
    return 2 * (q.numel() // q.shape[-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _conv_fn(args, kw, out):
    w = args[1]
    return 2 * out.numel() * math.prod(w.shape[-3:])


def _cov(args, kw, out):
    x = args[0]
    return 2 * out.numel() * x.shape[-1]


def _input(args, kw, out):
    return _numel(args[0])


def _pool_fn(args, kw, out):
    x, kernel = args[0], args[2]
    n = x.dim() - 2
    k = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel] * n
    return out.numel() * math.prod(([1] * n + k)[-n:])


def _window_pool(args, kw, out):
    kernel = args[1] if len(args) > 1 else kw["kernel_size"]
    n = args[0].dim() - 2
    k = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel] * n
    return out.numel() * math.prod(k)


def _interp(args, kw, out):
    mode = kw.get("mode", "nearest")
    nd = out.dim() - 2
    per = {"nearest": 0, "nearest-exact": 0, "area": 0, "bicubic": 2 * 4**nd}.get(mode, 2 * 2**nd)
    return per * out.numel()


def _grid_sample(args, kw, out):
    return (8 if kw.get("mode", "bilinear") == "bilinear" else 0) * out.numel()


def _affine_grid(args, kw, out):
    return 2 * 3 * out.numel()


def _gate(args, kw, out):
    # as the unfused act(s) and x * a: the fusion changes no count
    return args[1].numel() + (2 if kw.get("plus_one") else 1) * out.numel()


def _dropout(args, kw, out):
    return out.numel() if args[3] else 0


def _ema(args, kw, out):
    return 3 * args[0].numel() if args[2] else 0


def _einsum(args, kw, out):
    sizes = {}
    for term, t in zip(args[0].split("->")[0].split(","), args[1:]):
        sizes.update((c, max(d, sizes.get(c, 1))) for c, d in zip(term, t.shape))
    return (len(args) - 1) * math.prod(sizes.values())


def _zero(args, kw, out):
    return 0


_E, _R = "elementwise", "reduction"
# call_function / call_method targets -> (family, rule)
RULES = {}
for _fn in ("relu", "sigmoid", "tanh", "exp", "log", "sqrt", "rsqrt", "abs", "square", "sign"):
    RULES[getattr(torch, _fn)] = (_E, _out(lambda n: n))
for _fn in (
    F.gelu,
    F.silu,
    F.softplus,
    F.hardsigmoid,
    F.elu,
    F.relu6,
    F.hardswish,
    F.leaky_relu,
    operator.neg,
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.pow,
    operator.floordiv,
    operator.mod,
    operator.ne,
    torch.maximum,
    torch.minimum,
    torch.clamp,
    torch.where,
    runtime.compare_mask,
    runtime.logical_mask,
    torch.masked_fill,
):
    RULES[_fn] = (_E, _out(lambda n: n))
RULES[torch.addcmul] = (_E, _out(lambda n: 2 * n))
for _fn in (torch.sum, torch.mean, torch.amax, torch.amin, torch.prod):
    RULES[_fn] = (_R, _input)
for _fn in (torch.var, torch.std, torch.logsumexp):
    RULES[_fn] = (_R, lambda a, k, o: 3 * _numel(a[0]))
RULES[runtime.hardmax] = (_R, _input)
RULES[runtime.fold_windows] = (_R, _input)  # each window entry added once
for _fn in (torch.softmax, torch.log_softmax):
    RULES[_fn] = ("softmax", _out(lambda n: 5 * n))
RULES[F.normalize] = ("normalize", _out(lambda n: 3 * n))
RULES[operator.matmul] = ("matmul", _matmul)
RULES[F.scaled_dot_product_attention] = ("attention", _sdpa)
RULES[torch.einsum] = ("einsum", _einsum)
RULES[runtime.conv2d_fn] = ("conv", _conv_fn)
RULES[runtime.cov] = ("cov", _cov)
RULES[runtime.gate] = ("gate", _gate)
RULES[runtime.mul_into] = (_E, _out(lambda n: n))
RULES[runtime.relu_fresh] = RULES[torch.relu]
RULES[runtime.pool_nd] = ("pool", _pool_fn)
for _n in (1, 2, 3):
    for _k in ("avg", "max"):
        RULES[getattr(F, f"{_k}_pool{_n}d")] = ("pool", _window_pool)
RULES[runtime.adaptive_pool] = ("adaptive_pool", lambda a, k, o: 0 if o is a[0] else _numel(a[0]))
RULES[F.interpolate] = RULES[runtime.interpolate_like] = ("interpolate", _interp)
RULES[F.grid_sample] = ("grid_sample", _grid_sample)
RULES[runtime.affine_grid_like] = ("affine_grid", _affine_grid)
RULES[runtime.apply_dropout] = ("dropout", _dropout)
RULES[runtime.sample_onehot] = ("sampling", lambda a, k, o: 2 * _numel(a[0]))
RULES[runtime.ema_update] = ("ema", _ema)
for _fn in (
    torch.transpose,
    torch.permute,
    torch.flatten,
    torch.unsqueeze,
    torch.squeeze,
    torch.cat,
    torch.stack,
    torch.split,
    torch.select,
    torch.narrow,
    torch.index_select,
    torch.full_like,
    operator.getitem,
    F.pad,
    runtime.axes,
    runtime.unsqueeze_like,
    runtime.rearrange,
    runtime.sliding,
    runtime.numel_over,
    runtime.gather,
    runtime.split_matrix,
    runtime.patch_grid,
    runtime.split_like,
    runtime.rand_like,
    runtime.arange_like,
    runtime.arange_n,
    runtime.linspace_like,
    runtime.if_training,
    runtime.check_input_shapes,
    torch.roll,
    torch.clone,
    "expand",
    "expand_as",
    "reshape_as",
    "reshape",
    "detach",
    "clone",
    "size",
):
    RULES[_fn] = ("free", _zero)


def _module_rule(m: nn.Module, args, out):
    if isinstance(m, nn.Linear):
        return "linear", 2 * _numel(out) * m.in_features
    if isinstance(m, nn.modules.conv._ConvNd):
        return "conv", 2 * _numel(out) * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return "batchnorm", 2 * _numel(out)
    if isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
        return "layernorm", 5 * _numel(out)
    return None, 0


@dataclass
class NodeCost:
    name: str
    target: str
    family: str | None  # None: no rule for this op (counted 0 by attndsl)
    own: int  # attndsl's count
    torch: int  # FlopCounterMode's count of this node alone

    @property
    def flops(self) -> int:
        return self.torch if self.torch else self.own


@dataclass
class Profile:
    name: str
    params: dict  # the spec's parameter values
    shapes: dict  # input name -> shape
    n_params: int
    nodes: list = field(default_factory=list)  # NodeCost per graph node that computes
    peak_bytes: int = 0
    saved_bytes: int | None = None
    device: str = "meta"

    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    @property
    def macs(self) -> int:
        return sum(n.flops for n in self.nodes if n.family and FAMILIES[n.family][1]) // 2

    @property
    def torch_flops(self) -> int:
        """FlopCounterMode's total over the whole block."""
        return sum(n.torch for n in self.nodes)

    @property
    def uncounted(self) -> list:
        """Targets no rule covers (their own count is 0)."""
        return sorted({n.target for n in self.nodes if n.family is None})

    def by_family(self) -> dict:
        c: Counter = Counter()
        for n in self.nodes:
            c[n.family or "unknown"] += n.flops
        return dict(c.most_common())

    def render(self) -> str:
        shapes = ", ".join(f"{k}=[{', '.join(map(str, v))}]" for k, v in self.shapes.items())
        lines = [
            f"{self.name}: {shapes}",
            "parameters: " + ", ".join(f"{k}={v!r}" for k, v in self.params.items()),
            f"learned parameters: {self.n_params:,}",
            f"FLOPs: {self.flops:,} ({human(self.flops)})   MACs: {self.macs:,} ({human(self.macs)})",
            f"  of which counted by torch's FlopCounterMode: {self.torch_flops:,}",
            f"peak activation memory (forward): {human_bytes(self.peak_bytes)}",
        ]
        if self.saved_bytes is not None:
            lines.append(f"saved for backward (training): {human_bytes(self.saved_bytes)}")
        lines.append("FLOPs by op family:")
        for fam, n in self.by_family().items():
            lines.append(f"  {fam:<14} {n:>16,}")
        if self.uncounted:
            lines.append("ops without a count: " + ", ".join(self.uncounted))
        return "\n".join(lines)


def human(n: float) -> str:
    for unit, k in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= k:
            return f"{n / k:.3g} {unit}"
    return f"{n:g}"


def human_bytes(n: int) -> str:
    for unit, k in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= k:
            return f"{n / k:.3g} {unit}"
    return f"{n} B"


def _target_name(node: fx.Node, gm) -> str:
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)).__name__
    if node.op == "call_method":
        return f".{node.target}"
    t = node.target
    return getattr(t, "__name__", str(t))


def _tensors(v):
    if isinstance(v, torch.Tensor):
        yield v
    elif isinstance(v, (list, tuple)):
        for i in v:
            yield from _tensors(i)


def _storage(t: torch.Tensor):
    """A key shared by a tensor and its views, and its size in bytes."""
    s = t.untyped_storage()
    return s._cdata, s.nbytes()


class _Counter(fx.Interpreter):
    """Runs the graph node by node: FlopCounterMode per node, own counts, live-tensor bytes."""

    def __init__(self, gm):
        super().__init__(gm)
        self.costs: list = []
        self.peak = 0
        last = {}
        for node in gm.graph.nodes:
            for i in node.all_input_nodes:
                last[i] = node
        self.frees = {}  # node -> the nodes whose values die after it runs
        for v, user in last.items():
            self.frees.setdefault(user, []).append(v)
        self.live = {}  # node -> its tensors' storage keys
        self.sizes = {}  # storage key -> bytes
        self.fixed = set()  # storages of inputs, parameters, buffers

    def run_node(self, n):
        with FlopCounterMode(display=False) as counter:
            out = super().run_node(n)
        if n.op in ("placeholder", "get_attr"):
            self.fixed |= {_storage(t)[0] for t in _tensors(out)}
        elif n.op in ("call_function", "call_method", "call_module"):
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            if n.op == "call_module":
                family, own = _module_rule(self.module.get_submodule(n.target), args, out)
            else:
                rule = RULES.get(n.target)
                family, own = (rule[0], rule[1](args, kwargs, out)) if rule else (None, 0)
            self.costs.append(
                NodeCost(n.name, _target_name(n, self.module), family, int(own), int(counter.get_total_flops()))
            )
            keys = []
            for t in _tensors(out):
                k, size = _storage(t)
                if k not in self.fixed:
                    keys.append(k)
                    self.sizes[k] = size
            self.live[n] = keys
            self.peak = max(self.peak, self._live_bytes())
        for dead in self.frees.get(n, ()):
            self.live.pop(dead, None)
        return out

    def _live_bytes(self) -> int:
        return sum(self.sizes[k] for k in {k for keys in self.live.values() for k in keys})


def _saved_bytes(gm, inputs) -> int:
    """Bytes autograd saves for backward in one training-mode forward, parameters and buffers excluded."""
    fixed = {_storage(t)[0] for t in list(gm.parameters()) + list(gm.buffers())}
    seen = {}

    def pack(t):
        k, size = _storage(t)
        if k not in fixed:
            seen[k] = size
        return t

    gm.train()
    xs = [x.detach().requires_grad_(x.is_floating_point()) for x in inputs]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        gm(*xs)
    return sum(seen.values())


def _fit(decl, shape, params) -> list:
    out = list(shape)
    for i, d in enumerate(decl):
        if isinstance(d, str) and d.startswith("*"):
            break
        if isinstance(d, str) and isinstance(params.get(d), int) and i < len(out):
            out[i] = params[d]
    return out


def _check_dims(spec, params, name, shape):
    """Sizes the spec fixes by a parameter or a number (up to a variadic part) must match the given shape."""
    decl = spec.inputs[name]
    if not any(isinstance(d, str) and d.startswith("*") for d in decl) and len(decl) != len(shape):
        raise AttnDSLError(
            f"input `{name}` has {len(decl)} axes [{', '.join(map(str, decl))}], the given shape {len(shape)}"
        )
    for i, d in enumerate(decl):
        if isinstance(d, str) and d.startswith("*"):
            return
        want = params.get(d) if isinstance(d, str) else d
        if isinstance(want, int) and (i >= len(shape) or shape[i] != want):
            got = shape[i] if i < len(shape) else "missing"
            hint = f"pass -p {d}={got}" if isinstance(d, str) and i < len(shape) else None
            raise AttnDSLError(f"axis {i} of input `{name}` is {got}, but the spec makes it {d} = {want}", hint=hint)


def _inputs(spec, params: dict, shapes: dict, device: str) -> list:
    out = []
    for name in spec.inputs:
        if name not in shapes:
            raise AttnDSLError(f"no shape for input `{name}`", hint=f"give it, e.g. --shape {name}=2,64,56,56")
        shape = tuple(shapes[name])
        if not all(isinstance(d, int) and d >= 1 for d in shape):
            raise AttnDSLError(f"shape of `{name}` must be positive integers, got {list(shape)}")
        _check_dims(spec, params, name, shape)
        # uniform [0, 1): valid for every input kind (images, noise, probabilities, sampling locations)
        out.append(torch.rand(shape, device=device))
    return out


def profile(
    spec, shapes: dict | None = None, *, passes=None, device: str = "meta", training: bool = True, **params
) -> Profile:
    """The cost report of a spec (name, path, or a module built by `attndsl.build`) at the given input shapes.

    Shapes and parameters not given come from the spec's example. `device="meta"` counts without
    arithmetic; a graph whose ops need real data there is rerun on the CPU. `training` also measures
    what autograd saves for backward.
    """
    from .lowering import lower
    from .pipeline import compile_spec, load

    if isinstance(spec, fx.GraphModule) and "compiled" in spec.meta:
        c = spec.meta["compiled"]
        gm = copy.deepcopy(spec)
        if params:
            raise AttnDSLError("parameters are fixed in a built module; profile the spec to change them")
    else:
        s = load(spec)
        c = compile_spec(s, {**(s.example.get("params") or {}), **params}, passes)
        gm = lower(c.graph, c.class_name)
    # inputs not given: the example's shapes, with the sizes the parameters fix taken from this build
    ex = {
        k: _fit(c.spec.inputs[k], v, c.params)
        for k, v in (c.spec.example.get("inputs") or {}).items()
        if k in c.spec.inputs
    }
    shapes = {**ex, **(shapes or {})}
    for k in shapes:
        if k not in c.spec.inputs:
            raise AttnDSLError(f"`{c.spec.name}` has no input `{k}`", hint="inputs: " + ", ".join(c.spec.inputs))
    gm.eval()
    n_params = sum(p.numel() for p in gm.parameters())
    for dev in dict.fromkeys((device, "cpu")):
        run = copy.deepcopy(gm).to(dev)
        try:
            inputs = _inputs(c.spec, c.params, shapes, dev)
            counter = _Counter(run)
            with torch.no_grad():
                counter.run(*inputs)
            break
        except AttnDSLError:
            raise
        except Exception as e:  # an op without a meta kernel, data-dependent code, or a wrong shape
            if dev == "cpu":
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise AttnDSLError(
                    f"`{c.spec.name}` does not run at these shapes: {msg}",
                    hint="inputs: " + ", ".join(f"{k}: {v}" for k, v in c.spec.inputs.items()),
                ) from None
    saved = None
    if training:
        try:
            saved = _saved_bytes(run, inputs)
        except (RuntimeError, ValueError):  # e.g. batch norm over one value per channel in training
            saved = None
    return Profile(
        c.spec.name,
        dict(c.params),
        {k: list(v) for k, v in shapes.items() if k in c.spec.inputs},
        n_params,
        counter.costs,
        counter.peak,
        saved,
        dev,
    )
