"""The builtins of the language: every op's signature, doc, shape rule and lowering, one entry each.

Each family module registers its ops on import (see registry.py for what an entry is); this
package imports them all and re-exports the names the rest of attndsl uses.
"""

from . import constants, elementwise, fused, layout, pooling, products, reductions, sampling, state  # noqa: F401
from .elementwise import BINARY, COMPARISONS, UNARY
from .fused import GATE_ACTS, attention, gate
from .layer_rules import INITS, layer_apply_shape, layer_numel
from .products import matmul
from .reductions import REDUCE_KINDS, REDUCTIONS
from .reference import FAMILIES, ops_by_family, ops_text, reference_markdown
from .registry import (
    LAYERS,
    LIST_ARGS,
    OPS,
    OpDef,
    OpError,
    Out,
    T,
    axis_size,
    conv_out,
    drop_axes,
    layer,
    lowering,
    need_int,
    need_rank,
    need_size,
    need_tensor,
    op,
    register,
    resolve_axes,
    resolve_axis,
    sizes_n,
    static_builtins,
    tensor_args,
    tuple_n,
)

__all__ = [
    "BINARY",
    "COMPARISONS",
    "FAMILIES",
    "GATE_ACTS",
    "INITS",
    "LAYERS",
    "LIST_ARGS",
    "OPS",
    "REDUCE_KINDS",
    "REDUCTIONS",
    "UNARY",
    "OpDef",
    "OpError",
    "Out",
    "T",
    "attention",
    "axis_size",
    "conv_out",
    "drop_axes",
    "gate",
    "layer",
    "layer_apply_shape",
    "layer_numel",
    "lowering",
    "matmul",
    "need_int",
    "need_rank",
    "need_size",
    "need_tensor",
    "op",
    "ops_by_family",
    "ops_text",
    "reference_markdown",
    "register",
    "resolve_axes",
    "resolve_axis",
    "sizes_n",
    "static_builtins",
    "tensor_args",
    "tuple_n",
]
