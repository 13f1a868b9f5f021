"""Oracle tests: a compiled spec against its hand-written reference in tests/reference.

`check_against_reference` builds the spec, gives every parameter and buffer a
random value (so that initialisations such as a zero BN gamma cannot hide a
wrong formula), copies them into the reference through a key map, and
compares outputs and gradients (inputs and parameters) in float64, in train
and eval mode, at every shape set given.
"""

from __future__ import annotations

import torch
from torch import nn

import attndsl


def randomize(module: nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * 0.1)
            elif "dct" in name or name.endswith("_buffer"):
                continue  # fixed bases, not learned values
            else:
                t.copy_(torch.randn(t.shape, generator=gen, dtype=t.dtype) * 0.5)


def transfer(src: nn.Module, dst: nn.Module, key_map: dict | None = None) -> dict:
    """Copy src's state into dst; key_map maps src keys to dst keys (same name if absent).

    Every dst entry must be filled and every src entry used; tensors are reshaped
    when only their layout differs (a [C, 1, k] conv weight against a [C, k] one).
    Returns the src -> dst key map used.
    """
    key_map = dict(key_map or {})
    s, d = src.state_dict(), dst.state_dict()
    used, out = {}, {}
    for k, v in s.items():
        dk = key_map.get(k, k)
        if dk is None:
            continue
        assert dk in d, f"spec key {k} -> {dk}: no such reference key (reference has {sorted(d)})"
        assert d[dk].numel() == v.numel(), f"{k} {tuple(v.shape)} vs {dk} {tuple(d[dk].shape)}"
        out[dk] = v.reshape(d[dk].shape).clone()
        used[k] = dk
    missing = set(d) - set(out)
    assert not missing, f"reference entries not filled from the spec: {sorted(missing)}"
    dst.load_state_dict(out)
    return used


def _outs(o):
    return tuple(o) if isinstance(o, (tuple, list)) else (o,)


def check_against_reference(
    spec: str,
    params: dict,
    reference,
    shapes: list,
    key_map=None,
    modes=("train", "eval"),
    atol: float = 1e-9,
    rtol: float = 1e-7,
    seed: int = 0,
    input_fn=None,
):
    """shapes: a list of {input name: shape}; input_fn(name, shape, gen) may make special inputs.

    reference: the module, or a function of the built block that returns it (a test's `reference_for`).
    """
    built = attndsl.build(spec, **params).double()
    randomize(built, seed)
    if not isinstance(reference, nn.Module):  # a test's reference_for(block): the reference at block's parameters
        reference = reference(built)
    reference = reference.double()
    used = transfer(built, reference, key_map)
    params_built = dict(built.named_parameters())
    params_ref = dict(reference.named_parameters())
    order = list(attndsl.pipeline.load(spec).inputs)
    for i, shape_set in enumerate(shapes):
        gen = torch.Generator().manual_seed(seed + i)
        xs = [
            input_fn(n, shape_set[n], gen)
            if input_fn
            else torch.randn(*shape_set[n], generator=gen, dtype=torch.float64)
            for n in order
        ]
        for mode in modes:
            built.train(mode == "train"), reference.train(mode == "train")
            transfer(built, reference, key_map)  # eval-mode stats must match after train steps
            results = []
            for m in (built, reference):
                m.zero_grad(set_to_none=True)
                ins = [x.clone().requires_grad_(x.is_floating_point()) for x in xs]
                out = _outs(m(*ins))
                g = torch.Generator().manual_seed(99)
                loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in out)
                loss.backward()
                results.append((out, [x.grad for x in ins]))
            (o1, gi1), (o2, gi2) = results
            where = f"{spec} {mode} {shape_set}"
            assert len(o1) == len(o2), f"{where}: {len(o1)} outputs vs {len(o2)}"
            for a, b in zip(o1, o2):
                assert a.shape == b.shape, f"{where}: output shape {tuple(a.shape)} vs {tuple(b.shape)}"
                torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m: f"{where} output: {m}")
            for a, b in zip(gi1, gi2):
                if a is not None or b is not None:
                    torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m: f"{where} input grad: {m}")
            for k, dk in used.items():
                if k in params_built and dk in params_ref:
                    ga, gb = params_built[k].grad, params_ref[dk].grad
                    if ga is None and gb is None:
                        continue
                    assert ga is not None and gb is not None, f"{where}: gradient of {k} missing on one side"
                    torch.testing.assert_close(
                        ga.reshape(gb.shape), gb, atol=atol, rtol=rtol, msg=lambda m: f"{where} grad {k}: {m}"
                    )
    return built, reference
