"""Train a small CNN with attndsl blocks on several processes (DistributedDataParallel).

    torchrun --nproc_per_node=2 examples/train_ddp.py --steps 5
    torchrun --nproc_per_node=2 examples/train_ddp.py --specs senet,emanet   # a block with no-grad parameters
    torchrun --nproc_per_node=2 examples/train_ddp.py --fsdp                 # FSDP2 (fully_shard) instead of DDP

gloo on CPU, nccl when CUDA exists. Each rank draws its own batch; DDP averages the gradients,
so after every step each rank holds the same gradients and the same parameters, which the
script checks (all_reduce of the max and the min) and writes to `--out/rank<k>.json`.
DDP needs `find_unused_parameters=True` when some parameter gets no gradient in a step; attndsl
blocks list theirs in `block.unused_parameters` (EMANet's conv1 under its default no-grad EM),
and the script sets the flag from them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import attndsl
from attndsl.hosts import AttnLayer


def backbone(specs, classes=10, widths=(16, 32)):
    """Conv stages, each followed by the attndsl blocks named in `specs` (channels from the stage)."""
    layers, cin = [], 3
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
        layers += [attndsl.layer(s)(w) for s in specs]
        cin = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


def unused_parameters(model: nn.Module) -> list[str]:
    """Parameters of attndsl blocks that get no gradient in training, by model path."""
    return [f"{path}.{p}" for path, m in model.named_modules() if isinstance(m, AttnLayer) for p in m.unused_parameters]


def spread(t: torch.Tensor) -> float:
    """max over ranks minus min over ranks, largest over the elements: 0 when all ranks agree."""
    hi, lo = t.detach().clone(), t.detach().clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    return (hi - lo).abs().max().item() if t.numel() else 0.0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--specs", default="senet,cbam", help="attndsl blocks after each stage, comma-separated")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--fsdp", action="store_true", help="shard with FSDP2 (fully_shard) instead of DDP")
    ap.add_argument("--out", help="folder for one JSON report per rank")
    ap.add_argument(
        "--find-unused",
        choices=("auto", "off"),
        default="auto",
        help="auto: find_unused_parameters=True when a block lists unused parameters",
    )
    args = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)

    torch.manual_seed(0)  # the same initial weights on every rank
    model = backbone(args.specs.split(",")).to(device)
    unused = unused_parameters(model)
    if args.fsdp:
        from torch.distributed.fsdp import fully_shard

        for m in model:
            if isinstance(m, AttnLayer):
                fully_shard(m)
        wrapped = fully_shard(model)
    else:
        ddp_kw = {"device_ids": [device.index]} if cuda else {}
        find = bool(unused) and args.find_unused == "auto"
        wrapped = nn.parallel.DistributedDataParallel(model, find_unused_parameters=find, **ddp_kw)
    opt = torch.optim.SGD(wrapped.parameters(), lr=0.05, momentum=0.9)

    gen = torch.Generator().manual_seed(1000 + rank)  # each rank its own data
    losses, grad_spread, param_spread = [], 0.0, 0.0
    for _ in range(args.steps):
        x = torch.randn(args.batch, 3, 32, 32, generator=gen).to(device)
        y = torch.randint(0, 10, (args.batch,), generator=gen).to(device)
        loss = nn.functional.cross_entropy(wrapped(x), y)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        for p in wrapped.parameters():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            grad_spread = max(grad_spread, spread(_local(g)))
        opt.step()
        losses.append(loss.item())
    checksum = 0.0
    for p in wrapped.parameters():
        full = _local(p)
        param_spread = max(param_spread, spread(full))
        checksum += full.detach().double().abs().sum().item()
    report = {
        "rank": rank,
        "world": world,
        "backend": dist.get_backend(),
        "fsdp": args.fsdp,
        "find_unused_parameters": bool(unused) and not args.fsdp and args.find_unused == "auto",
        "unused": unused,
        "losses": losses,
        "grad_spread": grad_spread,
        "param_spread": param_spread,
        "param_checksum": checksum,
    }
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(args.out, f"rank{rank}.json").write_text(json.dumps(report))
    if rank == 0:
        print(json.dumps(report))
    dist.destroy_process_group()
    return report


def _local(t):
    """An FSDP2 DTensor gathered whole (its shards differ in size between ranks), or the tensor."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


if __name__ == "__main__":
    main()
