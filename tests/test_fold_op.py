"""The `fold` op (col2im along one axis, the adjoint of `unfold`), checked as tests/test_new_ops.py
checks its ops: built and generated modules against plain torch (F.fold) on random inputs, forward and
gradient; the runtime helper against F.fold beyond the spec configurations; the adjoint identity;
bad arguments as attndsl errors at the spec line; torch.compile, torch.export, fx, and the cost count."""

import pytest
import torch
import torch.nn.functional as F

from attndsl.ops import OPS
from attndsl.runtime import fold_windows, sliding
from tests.helpers import inline_spec
from tests.test_new_ops import X, error_at, modules, same_as_torch


def _spec(k, s, p):
    return f"""
u = unfold(unfold(x, H, {k}, step={s}, padding={p}), W, {k}, step={s}, padding={p})   # [B, C, h, w, k, k]
u = u * u
y = fold(fold(u, 3, W, step={s}, padding={p}), 2, H, step={s}, padding={p})
"""


def _ref(k, s, p):
    def ref(x):
        cols = F.unfold(x, k, padding=p, stride=s)
        return F.fold(cols * cols, x.shape[2:], k, padding=p, stride=s)

    return ref


@pytest.mark.parametrize("k,s,p", [(3, 1, 1), (3, 2, 1), (2, 2, 0), (1, 1, 0), (5, 3, 2), (3, 1, 0)])
def test_fold_matches_torch_fold(k, s, p):
    same_as_torch(_spec(k, s, p), _ref(k, s, p))


@pytest.mark.parametrize(
    "shape,dim,k,s,p",
    [
        ((2, 3, 7, 6), 2, 3, 2, 1),
        ((1, 4, 5, 5), 3, 3, 1, 1),
        ((2, 2, 9, 4), 2, 4, 3, 2),
        ((3, 1, 2, 8), 3, 2, 2, 0),
    ],
)
@pytest.mark.parametrize("mode", ["eager", "traced"])  # eager: one F.fold; traced (exports): pads and adds
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace's deprecation: the trace is the case tested
def test_helper_matches_torch_fold_per_axis(shape, dim, k, s, p, mode):
    """fold_windows on one axis is F.fold with a k x 1 (or 1 x k) kernel."""
    x = torch.randn(*shape, dtype=torch.float64)
    w = sliding(x, dim, k, s, p)  # [..., n, ..., k]
    fn = lambda t: fold_windows(t, dim, x.shape[dim], k, s, p)  # noqa: E731
    got = torch.jit.trace(fn, (w,))(w) if mode == "traced" else fn(w)
    n = w.shape[dim]
    cols = w.movedim(dim, -2).reshape(-1, n, k).transpose(1, 2)  # [rows, k, n]
    kernel, stride, pad = ((k, 1), (s, 1), (p, 0))
    ref = F.fold(cols, (x.shape[dim], 1), kernel, padding=pad, stride=stride)[:, 0, :, 0]
    other = [d for i, d in enumerate(x.shape) if i != dim]
    torch.testing.assert_close(got, ref.reshape(*other, x.shape[dim]).movedim(-1, dim), rtol=0, atol=1e-12)


def test_fold_is_the_adjoint_of_unfold():
    """<unfold(x), y> = <x, fold(y)> for every x, y: fold is the transpose of the window gather."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 3, generator=g, dtype=torch.float64)
    w = sliding(x, 1, 3, 2, 1)
    y = torch.randn(w.shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close((w * y).sum(), (x * fold_windows(y, 1, 7, 3, 2, 1)).sum())


@pytest.mark.parametrize(
    "f,message,at",
    [
        ("y = sum(fold(unfold(x, H, 3, padding=1), -1, H, padding=1), dims=-1)", "axis of the windows", "-1"),
        ("y = fold(unfold(x, H, 3, padding=1), 2, W, padding=1)", "do not come from an axis", "W, padding"),
        ("y = fold(unfold(x, H, 3, step=2), 2, H, step=2, padding=1)", "do not come from an axis", "H, step"),
        ("y = fold(unfold(x, H, 3, padding=1), 2, H, step=0, padding=1)", "step", "step=0"),
    ],
)
def test_fold_errors(f, message, at):
    error_at(f, message, at)


def test_fold_compile_fullgraph_export_and_trace():
    f, ref = _spec(3, 2, 1), _ref(3, 2, 1)
    built, gen, src = modules(f)
    assert "fold_windows" in src
    x = torch.randn(*X)
    want = ref(x)
    for m in (built, gen):
        torch._dynamo.reset()
        torch.testing.assert_close(torch.compile(m, fullgraph=True)(x), want)
        torch.testing.assert_close(torch.fx.symbolic_trace(m)(x), want)
    ep = torch.export.export(built, (x,))
    torch.testing.assert_close(ep.module()(x), want)


def test_fold_is_listed_and_counted():
    from attndsl.costs import profile

    assert "fold" in OPS and "adjoint of `unfold`" in OPS["fold"].doc
    for device in ("meta", "cpu"):
        p = profile(inline_spec(_spec(3, 2, 1)), {"x": list(X)}, device=device, channels=8)
        assert not p.uncounted, p.uncounted
        folds = [n for n in p.nodes if n.target == "fold_windows"]
        assert [n.own for n in folds] == [2 * 8 * 3 * 3 * 3 * 3, 2 * 8 * 3 * 6 * 3], folds
