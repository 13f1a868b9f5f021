"""Small functions the lowered graphs call, where torch has no single op.

Generated code copies the ones it uses (see codegen.py), so each is
self-contained: it may use only tensor methods, `torch` (imported inside the
function), the standard library, and other helpers of this module named in
`NEEDS`. Importing this module does not import torch.
"""

NEEDS = {"rearrange": ["parse_pattern"]}


def leaf(fn):
    """Mark a helper opaque to torch.fx: called with a Proxy (symbolic tracing, which also runs when a
    GraphModule is unpickled or a host model is traced), it becomes one call_function node instead of
    being traced into, where Python control flow on shapes would fail. Generated code spells the same
    thing `torch.fx.wrap(name)`. Without a Proxy it is a plain call."""
    import functools
    import sys

    @functools.wraps(fn)
    def call(*args, **kwargs):
        fx = sys.modules.get("torch.fx")
        if fx is not None:
            proxy = _find_proxy(fx.Proxy, args)
            if proxy is None:
                proxy = _find_proxy(fx.Proxy, kwargs.values())
            if proxy is not None:
                return proxy.tracer.create_proxy("call_function", call, args, kwargs)
        return fn(*args, **kwargs)

    return call


def _find_proxy(proxy_type, values):
    for v in values:
        if isinstance(v, proxy_type):
            return v
        if isinstance(v, (list, tuple)):
            found = _find_proxy(proxy_type, v)
            if found is not None:
                return found
    return None


@leaf
def axes(x, fixed, start, end):
    """Axis tuple for a reduction over a variadic run: `fixed` plus start..dim-end."""
    return tuple(fixed) + tuple(range(start, x.dim() - end))


@leaf
def unsqueeze_like(s, like):
    """Append unit axes to s until it has as many axes as `like`."""
    return s[(...,) + (None,) * (like.dim() - s.dim())]


def parse_pattern(pattern, _cache={}):
    """'b c (h w) -> b (h w) c' as two tuples of items: an axis name, `1`, `...`, or a tuple for a group.

    The cache is a plain dict default argument: self-contained for generated code, and
    torch.compile traces it without the warning an lru_cache draws.
    """
    if pattern in _cache:
        return _cache[pattern]
    sides = []
    for side in pattern.split("->"):
        items, group = [], None
        for tok in side.replace("(", " ( ").replace(")", " ) ").split():
            if tok == "(":
                if group is not None:
                    raise ValueError("nested parentheses in pattern")
                group = []
            elif tok == ")":
                if group is None:
                    raise ValueError("unbalanced `)` in pattern")
                items.append(tuple(group))
                group = None
            else:
                (items if group is None else group).append(tok)
        if group is not None:
            raise ValueError("unbalanced `(` in pattern")
        sides.append(tuple(items))
    _cache[pattern] = tuple(sides)
    return _cache[pattern]


@leaf
def rearrange(x, pattern, **sizes):
    """Reshape and permute x by an einops-style pattern ("b c h w -> b (h w) c")."""
    left, right = parse_pattern(pattern)
    ell = tuple(f"...{i}" for i in range(x.dim() - (len(left) - 1))) if "..." in left else ()

    def expand(item):
        names = (item,) if isinstance(item, str) else item
        return [a for n in names for a in (ell if n == "..." else (n,)) if a != "1"]

    # sizes read one index at a time: torch.jit.trace records x.shape[i] as a dynamic size, not iter(x.shape)
    known, flat, dims = dict(sizes), [], (x.shape[i] for i in range(x.dim()))
    for item in left:
        if item == "...":
            for a in ell:
                known[a] = next(dims)
        else:
            size, axes_ = next(dims), expand(item)
            unknown = [a for a in axes_ if a not in known]
            if unknown:
                prod = 1
                for a in axes_:
                    prod *= known.get(a, 1)
                known[unknown[0]] = size // prod
        flat += expand(item)
    if any(isinstance(item, tuple) or item == "1" for item in left):
        x = x.reshape([known[a] for a in flat])
    perm = [flat.index(a) for item in right for a in expand(item)]
    if perm != sorted(perm):
        x = x.permute(perm)
    out = []
    for item in right:
        if item == "...":
            out += [known[a] for a in ell]
        else:
            size = 1
            for a in expand(item):
                size *= known[a]
            out.append(size)
    return x if list(x.shape) == out else x.reshape(out)


@leaf
def adaptive_pool(x, kind, size):
    """Adaptive avg/max pooling of the spatial axes to `size`; x itself when it has that size already."""
    import torch.nn.functional as F

    if tuple(x.shape[2:]) == tuple(size):
        return x
    return getattr(F, f"adaptive_{kind}_pool{len(size)}d")(x, size)


@leaf
def interpolate_like(x, like, mode="nearest", align_corners=None):
    """Resize the spatial axes of x to those of `like`."""
    import torch.nn.functional as F

    return F.interpolate(x, size=tuple(like.shape[2:]), mode=mode, align_corners=align_corners)


@leaf
def affine_grid_like(theta, like, align_corners=False):
    """Sampling grid [B, H, W, 2] of the affine maps theta [B, 2, 3] for the spatial size of `like`, as
    F.affine_grid: a base grid of (x, y, 1) rows times theta. Written out because the ONNX exporters
    have affine_grid only from opset 20."""
    import torch

    def coords(n):  # pixel centres (corners when align_corners) of an axis of n pixels, in [-1, 1]
        i = torch.arange(n, dtype=theta.dtype, device=theta.device)
        last = i[-1:]  # n - 1 as a tensor: no Python branch on a size, so traces stay generic
        if align_corners:
            return (i * 2 - last) / last.clamp(min=1)
        return (i * 2 - last) / (last + 1)

    ys, xs = coords(like.shape[2]), coords(like.shape[3])
    h, w = ys.shape[0], xs.shape[0]
    base = torch.stack(
        [xs[None, :].expand(h, w), ys[:, None].expand(h, w), torch.ones_like(ys)[:, None].expand(h, w)], dim=-1
    )
    grid = base.reshape(1, h * w, 3) @ theta.transpose(1, 2)  # [B, H*W, 2]
    return grid.reshape(theta.shape[0], h, w, 2)


@leaf
def pool_nd(x, op, kernel, stride, padding, **kwargs):
    """avg_pool/max_pool of x [B, C, *spatial] at any rank; a list size lines up with the last axes.
    `kwargs` go to the pooling function (count_include_pad=False)."""
    import torch.nn.functional as F

    n = x.dim() - 2

    def fit(v, fill):
        return tuple(([fill] * n + (list(v) if isinstance(v, (list, tuple)) else [v] * n))[-n:])

    pool = {
        "avg_pool": (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d),
        "max_pool": (F.max_pool1d, F.max_pool2d, F.max_pool3d),
    }[op][n - 1]
    return pool(x, fit(kernel, 1), stride=fit(stride, 1), padding=fit(padding, 0), **kwargs)


@leaf
def sliding(x, dim, size, step=1, padding=0):
    """Windows of `size` along `dim` (zero-padded by `padding` both sides) as a new last axis, as
    Tensor.unfold. Eager and under torch.compile it is that view: no copy, where index_select along an inner
    axis took half of SASA's eager time, and its backward (index_add) made SASA and LR-Net 1.2-1.4x slower
    compiled in training. Traces and exports gather the windows by an index of window starts plus offsets:
    Unfold has no ONNX form."""
    import torch
    import torch.nn.functional as F

    dim = dim % x.dim()
    if padding:
        x = F.pad(x, [0, 0] * (x.dim() - 1 - dim) + [padding, padding])
    if not exporting():
        return x.unfold(dim, size, step)
    offsets = torch.arange(size, device=x.device)
    starts = torch.arange(0, x.shape[dim] - (size - 1), step, device=x.device)
    index = (starts[:, None] + offsets[None, :]).reshape(-1)  # [windows * size]
    # reshape by sizes read one index at a time: unflatten loses the dynamic batch in the TorchScript ONNX exporter
    sizes = [x.shape[i] for i in range(x.dim())]
    out = x.index_select(dim, index).reshape(sizes[:dim] + [-1, size] + sizes[dim + 1 :])
    perm = list(range(out.dim()))
    return out.permute(perm[: dim + 1] + perm[dim + 2 :] + [dim + 1])


def exporting() -> bool:
    """Whether a trace or an export (torch.jit, torch.export, ONNX) records the call: its graph must stay
    batch-generic and in ops every exporter takes."""
    import torch

    return torch.jit.is_tracing() or torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


def recording() -> bool:
    """Whether a trace, an export or torch.compile is recording the call (sizes may be symbolic there), rather
    than an eager run: helpers with an eager-only fast path ask."""
    import torch

    return exporting() or torch.compiler.is_compiling()


@leaf
def fold_windows(x, dim, length, size, step=1, padding=0):
    """The adjoint of `sliding`: x holds windows along `dim` and their `size` entries on its last axis;
    entry k of window i is added at position i * step - padding + k of an axis of `length` (col2im
    along one axis, as F.fold does per spatial axis). Written with pads and adds, no scatter: each
    entry k is spread to stride `step` by interleaving zeros, shifted by k, and the shifts summed. Eager, one
    F.fold (col2im) does it instead. Compiled, the pads and adds stay: inductor fuses them into one kernel,
    which measured faster than its col2im (benchmarks/RESULTS.md); traces and exports keep them too, which ONNX
    takes at every opset (its Col2Im needs opset 18)."""
    import math

    import torch
    import torch.nn.functional as F

    dim = dim % x.dim()
    if not recording():
        lead, win, mid = x.shape[:dim], x.shape[dim], x.shape[dim + 1 : -1]
        n, c = math.prod(lead), math.prod(mid)
        cols = x.reshape(n, win, c, size).permute(0, 2, 3, 1).reshape(n, c * size, win)  # F.fold's [N, C k, L]
        y = F.fold(cols, (1, length), (1, size), stride=(1, step), padding=(0, padding))  # [N, C, 1, length]
        return y.reshape(n, c, length).transpose(1, 2).reshape(*lead, length, *mid)
    total = None
    for k in range(size):
        t = x.select(-1, k)  # [..., windows (at dim), ...]
        if step > 1:  # window i at position i * step
            t = torch.stack([t] + [torch.zeros_like(t)] * (step - 1), dim + 1).flatten(dim, dim + 1)
        t = F.pad(t, [0, 0] * (t.dim() - 1 - dim) + [k, size - 1 - k])
        total = t if total is None else total + t
    return total.narrow(dim, padding, length)


def dct_filters(channels, height, width, freqs):
    """FcaNet's DCT basis: channel group i holds the (u, v) = freqs[i] cosine filter [C, h, w].

    freqs may also name one of FcaNet's selections, "top16", "low4", "bot8"... (1, 2, 4, 8, 16
    or 32 frequencies of the paper's 7x7 ablation: best-first, lowest-first, worst-first),
    scaled by height // 7 and width // 7 as the official code does.
    """
    import math
    import torch

    if isinstance(freqs, str):
        tables = {  # (u indices, v indices) on a 7x7 grid, official FcaNet get_freq_indices
            "top": (
                [0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1],
                [0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3],
            ),
            "low": (
                [0, 0, 1, 1, 0, 2, 2, 1, 2, 0, 3, 4, 0, 1, 3, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4],
                [0, 1, 0, 1, 2, 0, 1, 2, 2, 3, 0, 0, 4, 3, 1, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3],
            ),
            "bot": (
                [6, 1, 3, 3, 2, 4, 1, 2, 4, 4, 5, 1, 4, 6, 2, 5, 6, 1, 6, 2, 2, 4, 3, 3, 5, 5, 6, 2, 5, 5, 3, 6],
                [6, 4, 4, 6, 6, 3, 1, 4, 4, 5, 6, 5, 2, 2, 5, 1, 4, 3, 5, 0, 3, 1, 1, 2, 4, 2, 1, 1, 5, 3, 3, 3],
            ),
        }
        us, vs = tables[freqs[:3]]
        n = int(freqs[3:])
        freqs = [(u * (height // 7), v * (width // 7)) for u, v in zip(us[:n], vs[:n])]

    def basis(pos, freq, n):
        r = math.cos(math.pi * freq * (pos + 0.5) / n) / math.sqrt(n)
        return r if freq == 0 else r * math.sqrt(2)

    out = torch.zeros(channels, height, width)
    part = channels // len(freqs)
    for i, (u, v) in enumerate(freqs):
        for tx in range(height):
            for ty in range(width):
                out[i * part : (i + 1) * part, tx, ty] = basis(tx, u, height) * basis(ty, v, width)
    return out


@leaf
def cov(x, unbiased=True):
    """Covariance of the rows of x [..., d, n] over the last axis, as a batched torch.cov: [..., d, d]."""
    xc = x - x.mean(dim=-1, keepdim=True)
    return xc @ xc.transpose(-1, -2) / (x.shape[-1] - (1 if unbiased else 0))


@leaf
def apply_dropout(x, p, channelwise, training):
    """Dropout (train mode only); channelwise zeroes whole channels of [B, C, *S] as Dropout1d/2d/3d."""
    import torch.nn.functional as F

    if not channelwise:
        return F.dropout(x, p, training)
    fn = F.dropout1d if x.dim() == 3 else F.dropout2d if x.dim() == 4 else F.dropout3d
    return fn(x, p, training)


@leaf
def numel_over(x, dims):
    """Number of elements of x over the axes `dims` (a plain int from the shape)."""
    n = 1
    for d in dims:
        n *= x.shape[d]
    return n


def eye(n):
    """Identity matrix [n, n]."""
    import torch

    return torch.eye(n)


def triu_flat(n, offset=0):
    """Flat (row-major) indices of the upper triangle of an n x n matrix, from diagonal `offset` on."""
    import torch

    i, j = torch.triu_indices(n, n, offset)
    return i * n + j


@leaf
def gather(x, dim, index):
    """torch.gather, the index broadcast over the leading axes of x it lacks."""
    import torch

    lead = [x.shape[i] for i in range(x.dim() - index.dim())]  # indexed: traces keep the batch dynamic
    return torch.gather(x, dim, index.expand(*lead, *[-1] * index.dim()))


@leaf
def sample_onehot(p, u, dim):
    """One-hot of the first index along dim whose cumulative probability exceeds u (inverse CDF), no gradient."""
    import torch

    cdf = p.detach().cumsum(dim)
    idx = (cdf <= u.unsqueeze(dim)).sum(dim, keepdim=True).clamp_max(p.shape[dim] - 1)
    return torch.zeros_like(p).scatter_(dim, idx, 1.0)


def window_index(h, w, mask_h, mask_w):
    """[h*w, h*w] long: [j, i] = row-major offset of j in the mask_h x mask_w window centred on i, mask_h*mask_w outside."""
    import torch

    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dy = ys[:, None] - ys[None, :] + (mask_h - 1) // 2
    dx = xs[:, None] - xs[None, :] + (mask_w - 1) // 2
    inside = (dy >= 0) & (dy < mask_h) & (dx >= 0) & (dx < mask_w)
    return torch.where(inside, dy * mask_w + dx, torch.full_like(dy, mask_h * mask_w))


@leaf
def gate(x, s, act, plus_one, inplace=False):
    """x * act(s), or x * (1 + act(s)) as one fused multiply-add; written into x when `inplace` and
    `can_write_into` allow (build(..., inplace=True) sets it where nothing reads x afterwards)."""
    import torch

    fn = getattr(torch, act, None)
    if fn is None:  # hardsigmoid and friends live in torch.nn.functional only
        import torch.nn.functional as F

        fn = getattr(F, act)
    a = fn(s)
    if inplace and can_write_into(x, a):
        return x.addcmul_(x, a) if plus_one else x.mul_(a)
    return torch.addcmul(x, x, a) if plus_one else x * a


@leaf
def relu_fresh(t):
    """relu written into t, a conv's, linear's or norm's output or a sum that nothing else reads (lowering
    checks that), as nn.ReLU(inplace=True) does in hand-written blocks: eager, it spares a fresh tensor of t's
    size. Traces, exports and torch.compile get the out-of-place form (inductor fuses it anyway)."""
    import torch

    return torch.relu(t) if recording() else t.relu_()


@leaf
def mul_into(x, s, inplace):
    """x * s, written into x when `inplace` and `can_write_into` allow (see `gate`)."""
    return x.mul_(s) if inplace and can_write_into(x, s) else x * s


def can_write_into(x, other) -> bool:
    """Whether x op other may overwrite x: no gradient is wanted (an autograd graph would need the old x), the
    result has x's shape and dtype (other has x's dtype: no promotion), and x is dense (an expanded input has
    elements that share memory)."""
    import torch

    if torch.is_grad_enabled() and (x.requires_grad or getattr(other, "requires_grad", False)):
        return False
    if isinstance(other, torch.Tensor):
        if other.dtype != x.dtype or torch.broadcast_shapes(x.shape, other.shape) != x.shape:
            return False
    elif not (x.is_floating_point() or isinstance(other, int)):
        return False
    return x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)


NEEDS["gate"] = NEEDS["mul_into"] = ["can_write_into"]
NEEDS["recording"] = NEEDS["sliding"] = NEEDS["conv2d_fn"] = ["exporting"]
NEEDS["fold_windows"] = NEEDS["relu_fresh"] = ["recording"]


@leaf
def split_matrix(x, dim, n):
    """[size, n] float membership of the rows of axis `dim` in the n parts torch.tensor_split makes: part k
    starts at k * q + min(k, r) for size = q * n + r. Tensor arithmetic only, so traces and exports keep it."""
    import torch

    size = x.shape[dim]
    q = size // n
    k = torch.arange(n + 1, device=x.device)
    starts = k * q + k - (k - (size - q * n)).clamp(min=0)  # min(k, r) = k - max(k - r, 0)
    rows = torch.arange(size, device=x.device)[:, None]
    return ((rows >= starts[None, :-1]) & (rows < starts[None, 1:])).to(x.dtype)


@leaf
def hardmax(x, dim=-1):
    """One-hot of x.argmax(dim) along dim (first maximum on ties), x's dtype, no gradient."""
    import torch

    idx = x.detach().argmax(dim=dim, keepdim=True)
    return torch.zeros_like(x).scatter_(dim, idx, 1.0)


@leaf
def patch_grid(l, like, size):
    """grid_sample grid [B, size, size, 2] of a size x size pixel patch of like [B, C, H, W] centred at l = (x, y).

    Pixel spacing as align_corners=False: one pixel is 2 / W wide in x, 2 / H in y.
    """
    import torch

    offs = torch.arange(size, dtype=l.dtype, device=l.device) * 2 - (size - 1)
    gx = l[:, 0, None] + offs / like.shape[3]
    gy = l[:, 1, None] + offs / like.shape[2]
    b = l.shape[0]
    return torch.stack([gx[:, None, :].expand(b, size, size), gy[:, :, None].expand(b, size, size)], dim=-1)


def random_bases(shape, std=1.0, norm_dim=None):
    """A [shape] tensor of N(0, std) entries, L2-normalised along norm_dim (eps 1e-6) when given."""
    import torch

    t = torch.randn(shape) * std
    if norm_dim is not None:
        t = t / (1e-6 + t.norm(dim=norm_dim, keepdim=True))
    return t


@leaf
def ema_update(buffer, value, training, momentum, dims):
    """In training: buffer <- momentum * buffer + (1 - momentum) * value averaged over dims, in place, without
    gradient. Returns value unchanged."""
    import torch

    if training:
        with torch.no_grad():
            mean = value.mean(dim=dims, keepdim=True) if dims else value
            buffer.copy_(momentum * buffer + (1 - momentum) * mean)
    return value


@leaf
def split_like(x, likes, dim):
    """Split x along dim into parts as long as that axis of each tensor in likes."""
    import torch

    return torch.split(x, [v.shape[dim] for v in likes], dim)


@leaf
def conv2d_fn(x, weight, bias, stride, padding, dilation, groups, kernel=None):
    """F.conv2d by a weight tensor; a [B, O, C/groups, kh, kw] weight (bias [B, O]) gives each sample its own
    kernel. Eager, and compiled at a fixed batch size, that is one grouped conv; traced, exported or compiled
    with a dynamic batch, a batched matmul of the weights with the input's patches (F.unfold), where nothing
    depends on the batch size, so traces and exports stay batch-generic (sizes are read one index at a time,
    which traces record as dynamic). `kernel` gives (kh, kw) as plain ints where known: the ONNX exporter
    needs them."""
    import torch
    import torch.nn.functional as F

    if weight.dim() == 4:
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    # compile with dynamic=True: inductor cannot differentiate a conv whose group count is the symbolic batch
    # (a batch made dynamic by a recompile under the default dynamic=None still compiles); a trace cannot ask
    # the size itself, dynamo answers type(size) with int either way
    static = not torch.compiler.is_compiling() or torch._dynamo.config.assume_static_by_default
    if static and not exporting():
        # one grouped conv, the batch folded into the channels (B * groups groups); the patches below hold
        # C * kh * kw times the map at once (compiled CondConv trained 1.8x slower that way). Traces and exports
        # keep the batch size symbolic, which a group count cannot be.
        n = x.shape[0]
        y = F.conv2d(
            x.reshape(1, -1, x.shape[2], x.shape[3]),
            weight.flatten(0, 1),
            None if bias is None else bias.flatten(),
            stride,
            padding,
            dilation,
            n * groups,
        )
        return y.reshape(n, -1, y.shape[2], y.shape[3])

    def pair(v):
        return tuple(v) if isinstance(v, (list, tuple)) else (v, v)

    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    out_ch = weight.shape[1]
    kh, kw = kernel if kernel is not None else (weight.shape[3], weight.shape[4])
    cols = F.unfold(x, (kh, kw), (dh, dw), (ph, pw), (sh, sw))  # [B, C*kh*kw, L]
    cols = cols.reshape(cols.shape[0], groups, -1, cols.shape[2])  # [B, g, C/g*kh*kw, L]
    w = weight.reshape(weight.shape[0], groups, out_ch // groups, -1)  # [B, g, O/g, C/g*kh*kw]
    y = (w @ cols).flatten(1, 2)  # [B, O, L]
    if bias is not None:
        y = y + bias[:, :, None]
    out_h = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return y.reshape(y.shape[0], out_ch, out_h, out_w)


@leaf
def rand_like(x, last=None):
    """U[0, 1) noise from the global RNG, x's shape (last axis `last` if given), dtype and device."""
    import torch

    keep = x.dim() if last is None else x.dim() - 1
    shape = [x.shape[i] for i in range(keep)] + ([] if last is None else [last])  # indexed: traces stay dynamic
    return torch.rand(shape, dtype=x.dtype, device=x.device)


@leaf
def arange_like(x, dim):
    """0, 1, ..., n-1 for the n entries of axis dim of x, in x's dtype and device."""
    import torch

    return torch.arange(x.shape[dim], dtype=x.dtype, device=x.device)


@leaf
def arange_n(n, like):
    """0, 1, ..., n-1 in like's dtype and device."""
    import torch

    return torch.arange(n, dtype=like.dtype, device=like.device)


@leaf
def linspace_like(start, end, steps, like):
    """steps evenly spaced values from start to end, in like's dtype and device."""
    import torch

    return torch.linspace(start, end, steps, dtype=like.dtype, device=like.device)


@leaf
def if_training(a, b, training):
    """a in train mode, b in eval mode."""
    return a if training else b


class InputShapeError(ValueError):
    """An input of a built or generated module does not have the shape its spec declares."""


@leaf
def check_input_shapes(layout, *inputs):
    """Raise InputShapeError unless every input has the shape its spec declares.

    layout = {"spec": name, "inputs": ((input name, dims, notes, spatial), ...)} (a dict, which the fx
    leaf wrapper does not search for proxies): each of dims is an int (a size the parameters fix), a
    symbol name (a size inputs may share: "B"), (k, name) (a multiple of k whose quotient is the symbol
    `name`: MaxViT's window count), "*S" (a run of spatial axes, as many as the range `spatial` = (lo, hi)
    allows; None when there is no run) or an expression shown but not checked;
    notes[i] holds the (parameter, value) pairs behind dims[i]. Only sizes are compared, never data, so
    under torch.compile or torch.export the check costs guards that the graph's own ops already imply.
    """
    import torch

    if torch.jit.is_tracing():  # a trace keeps no Python check, and its sizes are traced values
        return
    spec = layout["spec"]

    def fail(name, dims, got, why=(), more=""):  # one f-string: dynamo cannot add strings
        why = f" ({', '.join(why)})" if why else ""
        shown = ", ".join(f"{d[0]}*{d[1]}" if isinstance(d, tuple) else str(d) for d in dims)
        raise InputShapeError(f"{spec}: input {name}: expected [{shown}]{why}{more}, got {[int(n) for n in got]}")

    seen = {}  # symbol -> (input, axis, size) where it was first met
    for (name, dims, notes, spatial), t in zip(layout["inputs"], inputs):
        if not isinstance(t, torch.Tensor):
            raise InputShapeError(
                f"{spec}: input {name}: expected a tensor [{', '.join(str(d) for d in dims)}], got {type(t).__name__}"
            )
        got = t.shape
        pack, extra = len(dims), len(got) - len(dims)  # axes after a run of 1 + extra axes shift by extra
        if spatial is None and extra:
            fail(name, dims, got)
        if spatial is not None:
            pack = [isinstance(d, str) and d.startswith("*") for d in dims].index(True)
            if not spatial[0] <= extra + 1 <= spatial[1]:
                fail(name, dims, got, more=f" with {spatial[0]} to {spatial[1]} spatial axes")
        wrong, why, clash = False, [], None
        for i, d in enumerate(dims):
            if i == pack:
                continue
            axis = i if i < pack else i + extra
            size = got[axis]
            if isinstance(d, tuple):  # a multiple of d[0]; the quotient is the symbol d[1]
                if got[axis] % d[0] != 0:
                    wrong = True
                    why += [f"{k}={v!r}" for k, v in notes[i] if f"{k}={v!r}" not in why]
                    continue
                d, size = d[1], got[axis] // d[0]
            if isinstance(d, int):
                if got[axis] != d:
                    wrong = True
                    why += [f"{k}={v!r}" for k, v in notes[i] if f"{k}={v!r}" not in why]
            elif not d.isidentifier():
                continue
            elif d not in seen:
                seen[d] = (name, axis, size)
            elif clash is None and size != seen[d][2]:
                clash = (d, axis, size)
        if wrong:
            fail(name, dims, got, why)
        if clash is not None:
            d, axis, mine = clash
            other, first, size = seen[d]
            if other == name:
                raise InputShapeError(
                    f"{spec}: input {name}: axes {first} and {axis} must agree on {d}, got {[int(n) for n in got]}"
                )
            raise InputShapeError(
                f"{spec}: inputs {other} and {name} must agree on {d}: {other} has {int(size)}, {name} has {int(mine)}"
            )


NEEDS["check_input_shapes"] = ["InputShapeError"]


@leaf
def compare_mask(a, b, op):
    """a <op> b (op an `operator` name: lt, le, gt, ge, eq, ne) as a mask in the tensor operand's floating
    dtype (the default one for integer operands): 1 where true, 0 where false. Spelled with the
    operators themselves: generated code imports torch only."""
    import torch

    t = a if isinstance(a, torch.Tensor) else b
    m = {
        "lt": lambda: a < b,
        "le": lambda: a <= b,
        "gt": lambda: a > b,
        "ge": lambda: a >= b,
        "eq": lambda: a == b,
        "ne": lambda: a != b,
    }[op]()
    return m.to(t.dtype if t.is_floating_point() else torch.get_default_dtype())


@leaf
def logical_mask(op, a, b=None):
    """logical_and/or/not of masks (nonzero is true) as a mask in a's floating dtype, as `compare_mask`."""
    import torch

    m = getattr(torch, op)(a, b) if b is not None else torch.logical_not(a)
    return m.to(a.dtype if a.is_floating_point() else torch.get_default_dtype())


def relative_position_index(h, w):
    """[h*w, h*w] long: [i, j] = (yi - yj + h - 1) * (2w - 1) + (xi - xj + w - 1), a row of a relative position
    bias table of (2h - 1) * (2w - 1) rows (Swin's relative_position_index)."""
    import torch

    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    return (ys[:, None] - ys[None, :] + h - 1) * (2 * w - 1) + (xs[:, None] - xs[None, :] + w - 1)
