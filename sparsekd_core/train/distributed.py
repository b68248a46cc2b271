"""Multi-process training helpers (torchrun / DDP): one process per GPU (NCCL) or per CPU worker (gloo).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; :func:`init_distributed` reads them.
Without them (a plain ``sparsekd-train`` call) everything here degrades to a single process: rank 0 of 1.

Only rank 0 writes checkpoints, logs, TensorBoard events and the summary; every rank trains on its
own shard of each epoch (``EpochSampler``) and DDP averages the gradients, so the replicas stay identical.
"""
from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank of world_size, and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: torch.device, timeout_s: float = 7200.0) -> DistContext:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU) and pick this rank's device.

    ``device`` is the requested device type; with CUDA each rank takes GPU ``LOCAL_RANK``.
    Without torchrun's environment (WORLD_SIZE unset or 1) nothing is initialised. ``timeout_s`` bounds how
    long ranks wait for each other: long, because the other ranks wait while rank 0 evaluates.
    """
    world = env_world_size()
    if world <= 1:
        return DistContext(device=device)
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but {key} is not set: start multi-process training with "
                               "torchrun (torchrun --nproc_per_node=N -m sparsekd_core.cli.train ...)")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices: "
                               "use --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    log.info("rank %d/%d on %s (backend %s)", rank, world, device, backend)
    return DistContext(rank, world, local_rank, device)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def maybe_sync_batchnorm(module: nn.Module, ctx: DistContext, enabled: bool) -> nn.Module:
    """Convert BatchNorm layers (spconv's BatchNorm1d included) to SyncBatchNorm when asked and possible.

    torch's SyncBatchNorm runs on GPUs only; on CPU the request is ignored with a warning.
    """
    if not enabled:
        return module
    if not ctx.distributed:
        log.warning("--sync-bn has no effect in a single process")
        return module
    if ctx.device.type != "cuda":
        log.warning("--sync-bn needs CUDA (torch's SyncBatchNorm is GPU-only): keeping per-process BatchNorm")
        return module
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def wrap_ddp(module: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel over ``module`` (which must compute the loss in ``forward``); identity when
    single-process. Frozen parameters (a teacher's) are left out of the gradient all-reduce by DDP itself."""
    if not ctx.distributed:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None,
                                               find_unused_parameters=find_unused_parameters)


def broadcast_buffers(module: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP averages gradients, so parameters agree, but each rank updates its running statistics from its own
    batches; at the end of training (and before evaluating) rank 0's statistics become everyone's.
    """
    if not ctx.distributed:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)


class EpochSampler(DistributedSampler):
    """torch's DistributedSampler (shuffled by ``seed + epoch``, padded so every rank gets the same count)
    that can also start part-way through an epoch: ``set_epoch(epoch, skip=k)`` drops this rank's first ``k``
    samples, which is how a resumed run continues with exactly the batches the interrupted one had left.

    Works without a process group when ``num_replicas`` and ``rank`` are given (single process: 1 and 0).
    """

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        if skip < 0 or skip > self.num_samples:
            raise ValueError(f"EpochSampler: cannot skip {skip} of {self.num_samples} samples")
        self.skip = int(skip)

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[self.skip:])

    def __len__(self) -> int:
        return self.num_samples - self.skip
