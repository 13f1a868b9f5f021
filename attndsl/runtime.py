"""Small functions the lowered graphs call, where torch has no single op.

Generated code copies the ones it uses (see codegen.py), so each is
self-contained: it may use only tensor methods, `torch` (imported inside the
function), the standard library, and other helpers of this module named in
`NEEDS`. Importing this module does not import torch.
"""
NEEDS = {"rearrange": ["parse_pattern"]}


def axes(x, fixed, start, end):
    """Axis tuple for a reduction over a variadic run: `fixed` plus start..dim-end."""
    return tuple(fixed) + tuple(range(start, x.dim() - end))


def unsqueeze_like(s, like):
    """Append unit axes to s until it has as many axes as `like`."""
    return s.reshape(tuple(s.shape) + (1,) * (like.dim() - s.dim()))


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


def rearrange(x, pattern, **sizes):
    """Reshape and permute x by an einops-style pattern ("b c h w -> b (h w) c")."""
    left, right = parse_pattern(pattern)
    ell = tuple(f"...{i}" for i in range(x.dim() - (len(left) - 1))) if "..." in left else ()

    def expand(item):
        names = (item,) if isinstance(item, str) else item
        return [a for n in names for a in (ell if n == "..." else (n,)) if a != "1"]

    known, flat, dims = dict(sizes), [], iter(x.shape)
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


def interpolate_like(x, like, mode="nearest", align_corners=None):
    """Resize the spatial axes of x to those of `like`."""
    import torch.nn.functional as F
    return F.interpolate(x, size=tuple(like.shape[2:]), mode=mode, align_corners=align_corners)


def affine_grid_like(theta, like, align_corners=False):
    """Sampling grid of the affine maps theta [B, 2, 3] for the spatial size of `like`."""
    import torch.nn.functional as F
    return F.affine_grid(theta, list(like.shape), align_corners=align_corners)


def pool_nd(x, op, kernel, stride, padding):
    """avg_pool/max_pool of x [B, C, *spatial] at any rank; a list size lines up with the last axes."""
    import torch.nn.functional as F
    n = x.dim() - 2

    def fit(v, fill):
        return tuple(([fill] * n + (list(v) if isinstance(v, (list, tuple)) else [v] * n))[-n:])
    pool = {"avg_pool": (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d),
            "max_pool": (F.max_pool1d, F.max_pool2d, F.max_pool3d)}[op][n - 1]
    return pool(x, fit(kernel, 1), stride=fit(stride, 1), padding=fit(padding, 0))


def sliding(x, dim, size, step=1, padding=0):
    """Windows of `size` along `dim` (zero-padded by `padding` both sides) as a new last axis."""
    import torch.nn.functional as F
    if padding:
        pad = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [padding, padding]
        x = F.pad(x, pad)
    return x.unfold(dim, size, step)


def dct_filters(channels, height, width, freqs):
    """FcaNet's DCT basis: channel group i holds the (u, v) = freqs[i] cosine filter [C, h, w].

    freqs may also name one of FcaNet's selections, "top16", "low4", "bot8"... (1, 2, 4, 8, 16
    or 32 frequencies of the paper's 7x7 ablation: best-first, lowest-first, worst-first),
    scaled by height // 7 and width // 7 as the official code does.
    """
    import math
    import torch
    if isinstance(freqs, str):
        tables = {   # (u indices, v indices) on a 7x7 grid, official FcaNet get_freq_indices
            "top": ([0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1],
                    [0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3]),
            "low": ([0, 0, 1, 1, 0, 2, 2, 1, 2, 0, 3, 4, 0, 1, 3, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4],
                    [0, 1, 0, 1, 2, 0, 1, 2, 2, 3, 0, 0, 4, 3, 1, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3]),
            "bot": ([6, 1, 3, 3, 2, 4, 1, 2, 4, 4, 5, 1, 4, 6, 2, 5, 6, 1, 6, 2, 2, 4, 3, 3, 5, 5, 6, 2, 5, 5, 3, 6],
                    [6, 4, 4, 6, 6, 3, 1, 4, 4, 5, 6, 5, 2, 2, 5, 1, 4, 3, 5, 0, 3, 1, 1, 2, 4, 2, 1, 1, 5, 3, 3, 3]),
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
                out[i * part:(i + 1) * part, tx, ty] = basis(tx, u, height) * basis(ty, v, width)
    return out


def cov(x, unbiased=True):
    """Covariance of the rows of x [..., d, n] over the last axis, as a batched torch.cov: [..., d, d]."""
    xc = x - x.mean(dim=-1, keepdim=True)
    return xc @ xc.transpose(-1, -2) / (x.shape[-1] - (1 if unbiased else 0))


def eye(n):
    """Identity matrix [n, n]."""
    import torch
    return torch.eye(n)


def triu_flat(n, offset=0):
    """Flat (row-major) indices of the upper triangle of an n x n matrix, from diagonal `offset` on."""
    import torch
    i, j = torch.triu_indices(n, n, offset)
    return i * n + j


def gate(x, s, act, plus_one):
    """x * act(s), or x * (1 + act(s)) as one fused multiply-add."""
    import torch
    a = getattr(torch, act)(s)
    return torch.addcmul(x, x, a) if plus_one else x * a
