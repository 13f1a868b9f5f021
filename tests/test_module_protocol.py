"""Every spec's built and generated module is a first-class torch module (see tests/module_protocol.py):
pickle, torch.save/load, deepcopy, torch.fx.symbolic_trace, torchvision's create_feature_extractor,
torch.jit.trace reused at another batch size, torch.export with a dynamic batch, and ONNX through both
exporters run in onnxruntime, all against eager at the spec's example params and shapes.

One case (module, inputs, eager outputs, exported program) serves all checks of a (spec, kind): the
parameters run spec by spec, so only the current case is kept.
"""

import pytest
import torch

import attndsl
from tests.module_protocol import CHECKS, KINDS, Case, check_deepcopy, check_jit_trace

SPECS = sorted(attndsl.all_specs())
_current: dict = {}


def case(name: str, kind: str) -> Case:
    if (name, kind) not in _current:
        _current.clear()
        _current[name, kind] = Case(name, kind)
    return _current[name, kind]


@pytest.mark.parametrize(
    "name,kind,check", [pytest.param(n, k, c, id=f"{n}-{k}-{c}") for n in SPECS for k in KINDS for c in CHECKS]
)
def test_module_protocol(name, kind, check):
    CHECKS[check](case(name, kind))


def test_matrix_covers_every_spec():
    assert len(SPECS) >= 54


def test_jit_trace_check_catches_a_baked_batch():
    """The checks are not vacuous: a module that bakes its trace-time batch size fails the jit.trace check."""

    class Baked(torch.nn.Module):
        def forward(self, x):
            return x.reshape(int(x.shape[0]), -1).sum(1)  # int(): the trace records a constant

    c = case("senet", "built")
    c.block, c._expected = Baked(), {}
    try:
        with pytest.raises(Exception):
            check_jit_trace(c)
    finally:
        _current.clear()


def test_deepcopy_check_catches_shared_parameters():
    class Shallow(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

        def __deepcopy__(self, memo):  # a copy that shares its parameters with the original
            return Shallow(self.inner)

    c = case("senet", "built")
    c.block, c._expected = Shallow(c.block), {}
    try:
        with pytest.raises(AssertionError, match="shared"):
            check_deepcopy(c)
    finally:
        _current.clear()


# The exportable helpers agree with the torch ops they replace, beyond the spec configurations.


@pytest.mark.parametrize("dim,size,step,padding", [(2, 3, 1, 1), (3, 3, 2, 0), (-1, 2, 1, 2), (1, 4, 3, 0)])
def test_sliding_matches_unfold(dim, size, step, padding):
    import torch.nn.functional as F

    from attndsl.runtime import sliding

    x = torch.randn(2, 5, 7, 6)
    d = dim % x.dim()
    ref = F.pad(x, [0, 0] * (x.dim() - 1 - d) + [padding, padding]).unfold(d, size, step)
    torch.testing.assert_close(sliding(x, dim, size, step, padding), ref, rtol=0, atol=0)


@pytest.mark.parametrize("size,n", [(8, 4), (7, 4), (10, 4), (3, 5), (5, 1)])
def test_split_matrix_matches_tensor_split(size, n):
    from attndsl.runtime import split_matrix

    m = split_matrix(torch.zeros(2, size), 1, n)
    parts = torch.tensor_split(torch.arange(size), n)
    ref = torch.zeros(size, n)
    for k, rows in enumerate(parts):
        ref[rows, k] = 1
    torch.testing.assert_close(m, ref, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:Since version 1.3.0")  # torch's note on unit-size grids, the case tested
@pytest.mark.parametrize("h,w", [(9, 11), (1, 5), (4, 1)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_like_matches_affine_grid(h, w, align_corners):
    import torch.nn.functional as F

    from attndsl.runtime import affine_grid_like

    theta = torch.randn(3, 2, 3)
    like = torch.zeros(3, 2, h, w)
    torch.testing.assert_close(
        affine_grid_like(theta, like, align_corners), F.affine_grid(theta, [3, 2, h, w], align_corners=align_corners)
    )


@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 1, 1, 1), (2, 0, 1, 2), (1, 2, 2, 4), (2, 1, 1, 1)])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("kernel", [None, (3, 3)])
@pytest.mark.parametrize("mode", ["eager", "traced"])
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.trace's deprecation: the trace is the case tested
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_per_sample_conv2d_fn_matches_conv2d(stride, padding, dilation, groups, bias, kernel, mode, monkeypatch):
    """Eager: one grouped conv over the folded batch (no patches); traced: the patch product, batch-generic."""
    import torch.nn.functional as F

    from attndsl.runtime import conv2d_fn

    def run(x, w, b=None):
        return conv2d_fn(x, w, b, (stride, stride), (padding, padding), (dilation, dilation), groups, kernel)

    def ref(x, w, b):
        return torch.cat(
            [
                F.conv2d(x[i : i + 1], w[i], None if b is None else b[i], stride, padding, dilation, groups)
                for i in range(len(x))
            ]
        )

    def case(n):
        g = torch.Generator().manual_seed(n)
        x, w = torch.randn(n, 8, 9, 7, generator=g), torch.randn(n, 12, 8 // groups, 3, 3, generator=g)
        return x, w, torch.randn(n, 12, generator=g) if bias else None

    x, w, b = case(3)
    if mode == "traced":
        fn = torch.jit.trace(run, (x, w) + ((b,) if bias else ()))
        x, w, b = case(5)  # another batch size than the trace's
    else:
        monkeypatch.setattr(F, "unfold", lambda *a, **k: pytest.fail("eager per-sample conv built patches"))
        fn = run
    got = fn(x, w, *((b,) if bias else ()))
    torch.testing.assert_close(got, ref(x, w, b), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dynamic", [False, True])
def test_per_sample_conv2d_fn_compiled(dynamic, monkeypatch):
    """Compiled at a fixed batch size: the grouped conv (no patches); with a dynamic batch: the patch product,
    since a group count cannot be symbolic."""
    import torch.nn.functional as F

    from attndsl.runtime import conv2d_fn

    calls = []
    unfold = F.unfold
    monkeypatch.setattr(F, "unfold", lambda *a, **k: calls.append(1) or unfold(*a, **k))

    def run(x, w, b):
        return conv2d_fn(x, w, b, (1, 1), (1, 1), (1, 1), 2, (3, 3))

    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(3, 8, 9, 7, generator=g), torch.randn(3, 12, 4, 3, 3, generator=g), torch.randn(3, 12)
    fn = torch.compile(run, dynamic=dynamic, backend="inductor" if not dynamic else "eager", fullgraph=True)
    want = torch.cat([F.conv2d(x[i : i + 1], w[i], b[i], 1, 1, 1, 2) for i in range(3)])
    torch.testing.assert_close(fn(x, w, b), want, atol=1e-5, rtol=1e-5)
    assert bool(calls) == dynamic
