"""attndsl: a declarative graph compiler for attention blocks in computer vision.

    import attndsl
    block = attndsl.build("cbam", channels=256)             # a torch.fx.GraphModule
    fast = attndsl.build("cbam", channels=256, compile=True)  # under torch.compile

Pipeline: spec (YAML) -> syntax -> frontend (IR + shapes) -> passes -> lowering (torch.fx)
-> codegen (standalone Python). See `attndsl.pipeline`.
"""

from .errors import AttnDSLError
from .pipeline import build, compile_spec, fold_batchnorm
from .registry import all_specs
from .runtime import InputShapeError

__all__ = [
    "AttnDSLError",
    "InputShapeError",
    "build",
    "compile_spec",
    "fold_batchnorm",
    "all_specs",
    "generate",
    "layer",
    "attach",
    "profile",
    "capture",
]
__version__ = "0.1.0"


def generate(spec, passes=None, **params) -> str:
    """Standalone Python source (torch only) of the spec's module."""
    from .codegen import generate as _generate

    return _generate(spec, passes=passes, **params)


def profile(spec, shapes=None, **kw):
    """Parameters, FLOPs/MACs and activation memory of a spec or built block (see `attndsl.costs`)."""
    from .costs import profile as _profile

    return _profile(spec, shapes, **kw)


def capture(model, detach: bool = True):
    """`with attndsl.capture(model) as maps:` records every attndsl block's attention maps (see `attndsl.attnmaps`)."""
    from .attnmaps import capture as _capture

    return _capture(model, detach)


def __getattr__(name):
    # hosts needs torch: imported on first use, so `import attndsl` stays torch-free
    if name in ("layer", "attach"):
        from . import hosts

        return getattr(hosts, name)
    raise AttributeError(f"module 'attndsl' has no attribute {name!r}")
