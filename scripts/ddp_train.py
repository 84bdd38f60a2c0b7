"""Data-parallel training with DistributedDataParallel, launched by torchrun.

    # 2 processes on this machine, CPU (gloo), loopback only:
    torchrun --nproc_per_node 2 --master_addr 127.0.0.1 --master_port 29511 scripts/ddp_train.py
    # one process per GPU on one machine (nccl is picked automatically when CUDA is present):
    torchrun --nproc_per_node 4 scripts/ddp_train.py --steps 200
    # two machines with 8 GPUs each (run on both; node 0's address is the rendezvous point):
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST0:29500 \
        scripts/ddp_train.py

What it does (every rank runs the same code):
1. checks numerically that DDP's gradient averaging over the ranks gives the same gradient and
   the same SGD update as one process on the full batch (rank 0 recomputes it without DDP);
2. trains LeNet-5 on the 8x8 digits for `--steps` steps with `--batch-size` images per process
   and measures the throughput (images per second over all processes);
3. rank 0 prints one JSON line (and writes it to `--out`). The whole run is bounded by
   `--max-seconds` (the process group times out too).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing
import helpers  # noqa: E402
from helpers.data import normalize  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30, help="training steps for the throughput measurement")
    p.add_argument("--batch-size", type=int, default=64, help="images per process and step")
    p.add_argument("--check-batch", type=int, default=64, help="global batch of the equivalence check")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate")
    p.add_argument("--max-seconds", type=float, default=120, help="stop training after this long")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: cores / processes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=str, default=None, help="JSON file for rank 0's result")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.check_batch < 1 or args.max_seconds <= 0 or args.threads < 0:
        p.error("--steps, --batch-size, --check-batch must be >= 1 and --max-seconds > 0, --threads >= 0")
    return args


def equivalence_check(model, ddp_model, x, y, lr: float, rank: int, world: int) -> dict[str, float]:
    """DDP step on this rank's shard vs one process on the whole batch (computed on every rank)."""
    if len(x) % world:
        raise ValueError(f"--check-batch={len(x)} must be divisible by the number of processes ({world})")
    reference = copy.deepcopy(model)  # same initial weights, no DDP
    shard = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
    ddp_model.zero_grad()
    F.cross_entropy(ddp_model(x[shard]), y[shard]).backward()  # DDP all-reduces (averages) gradients
    reference.zero_grad()
    F.cross_entropy(reference(x), y).backward()  # full batch, mean loss
    grad_diff = max((p.grad - q.grad).abs().max().item() for p, q in zip(model.parameters(), reference.parameters()))
    with torch.no_grad():  # one plain SGD step on both
        for p, q in zip(model.parameters(), reference.parameters()):
            p -= lr * p.grad
            q -= lr * q.grad
    param_diff = max((p - q).abs().max().item() for p, q in zip(model.parameters(), reference.parameters()))
    grad_scale = max(q.grad.abs().max().item() for q in reference.parameters())
    return {"max_grad_diff": grad_diff, "max_param_diff": param_diff, "max_grad": grad_scale}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message="Grad strides do not match")  # 1-channel conv weights
    if os.environ.get("MASTER_ADDR") in ("127.0.0.1", "localhost"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo: stay on the loopback interface
    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    else:  # share the CPU cores between the processes instead of oversubscribing them
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        threads = args.threads or max(1, (os.cpu_count() or 1) // local_world)
        torch.set_num_threads(threads)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=args.max_seconds + 60))
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        data = helpers.load_digits()
        x_all = normalize(data.x_train, data.mean, data.std).to(device)
        y_all = data.y_train.to(device)
        torch.manual_seed(args.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
        model = helpers.build_model("lenet5", data.shape, data.n_classes).to(device)  # no BatchNorm
        ddp_model = DDP(model, device_ids=[local_rank] if cuda else None)

        check = equivalence_check(model, ddp_model, x_all[: args.check_batch], y_all[: args.check_batch],
                                  args.lr, rank, world)

        opt = torch.optim.SGD(ddp_model.parameters(), lr=args.lr, momentum=0.9)
        gen = torch.Generator().manual_seed(args.seed + rank)  # each rank draws its own batches
        dist.barrier()
        start, steps = time.perf_counter(), 0
        for step in range(1, args.steps + 1):
            steps = step
            idx = torch.randint(0, len(y_all), (args.batch_size,), generator=gen).to(device)
            loss = F.cross_entropy(ddp_model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            stop = torch.tensor(float(time.perf_counter() - start > args.max_seconds), device=device)
            dist.all_reduce(stop)  # every rank stops at the same step
            if stop.item() > 0:
                break
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        result = {
            "backend": backend, "world_size": world, "device": device.type, "steps": steps,
            "batch_per_process": args.batch_size, "seconds": seconds,
            "images_per_second": world * args.batch_size * steps / seconds,
            "final_loss": loss.item(), "threads_per_process": torch.get_num_threads(), **check,
        }
        if rank == 0:
            print(json.dumps(result))
            if args.out:
                Path(args.out).write_text(json.dumps(result))
        return result
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
