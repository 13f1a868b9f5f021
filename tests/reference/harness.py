"""Shared checks for the hand-written reference modules.

Each reference test builds a module and inputs, then calls these helpers, so
every mechanism is held to the same bar: finite forward and backward in train
and eval mode, gradients reaching every parameter, and float64 gradcheck.
"""

from __future__ import annotations

import torch
from torch import nn


def as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def scalar_loss(outputs, seed: int = 0) -> torch.Tensor:
    """A random projection of every floating output, so no gradient is trivially 1."""
    gen = torch.Generator().manual_seed(seed)
    loss = 0.0
    for o in as_tuple(outputs):
        if o.is_floating_point():
            w = torch.randn(o.shape, generator=gen, dtype=o.dtype)
            loss = loss + (o * w).sum()
    return loss


def forward_backward(module: nn.Module, *inputs: torch.Tensor, check_params: bool = True):
    """Run forward and backward; assert every output and gradient is finite.

    Returns the outputs. With check_params, every trainable parameter must get a gradient.
    """
    inputs = tuple(i.detach().clone().requires_grad_(i.is_floating_point()) for i in inputs)
    module.zero_grad(set_to_none=True)
    out = module(*inputs)
    for o in as_tuple(out):
        assert torch.isfinite(o).all(), "non-finite output"
    scalar_loss(out).backward()
    for i in inputs:
        if i.requires_grad:
            assert i.grad is not None and torch.isfinite(i.grad).all(), "bad input gradient"
    if check_params:
        for name, p in module.named_parameters():
            if p.requires_grad:
                assert p.grad is not None, f"no gradient reached {name}"
                assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"
    return out


def train_and_eval(module: nn.Module, *inputs: torch.Tensor, check_params: bool = True):
    """forward_backward in train mode, then a no-grad forward in eval mode."""
    module.train()
    forward_backward(module, *inputs, check_params=check_params)
    module.eval()
    with torch.no_grad():
        out = module(*inputs)
    for o in as_tuple(out):
        assert torch.isfinite(o).all(), "non-finite output in eval mode"
    module.train()
    return out


def gradcheck(module: nn.Module, *inputs: torch.Tensor, eval_mode: bool = True) -> None:
    """float64 gradcheck with respect to the floating inputs and all parameters."""
    module = module.double()
    module.train(not eval_mode)
    xs = tuple(i.detach().double().requires_grad_() if i.is_floating_point() else i for i in inputs)
    params = [p for p in module.parameters() if p.requires_grad]
    names = [n for n, p in module.named_parameters() if p.requires_grad]

    def fn(*args):
        xin, ps = args[: len(xs)], args[len(xs) :]
        state = dict(zip(names, ps))
        out = torch.func.functional_call(module, state, xin)
        return tuple(o for o in as_tuple(out) if o.is_floating_point())

    args = xs + tuple(p.detach().clone().requires_grad_() for p in params)
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
