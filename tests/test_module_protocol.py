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


@pytest.mark.parametrize("name,kind,check", [pytest.param(n, k, c, id=f"{n}-{k}-{c}")
                                             for n in SPECS for k in KINDS for c in CHECKS])
def test_module_protocol(name, kind, check):
    CHECKS[check](case(name, kind))


def test_matrix_covers_every_spec():
    assert len(SPECS) >= 54


def test_jit_trace_check_catches_a_baked_batch():
    """The checks are not vacuous: a module that bakes its trace-time batch size fails the jit.trace check."""
    class Baked(torch.nn.Module):
        def forward(self, x):
            return x.reshape(int(x.shape[0]), -1).sum(1)    # int(): the trace records a constant

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

        def __deepcopy__(self, memo):     # a copy that shares its parameters with the original
            return Shallow(self.inner)

    c = case("senet", "built")
    c.block, c._expected = Shallow(c.block), {}
    try:
        with pytest.raises(AssertionError, match="shared"):
            check_deepcopy(c)
    finally:
        _current.clear()
