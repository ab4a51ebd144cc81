"""Training on several processes: ``torchrun --nproc_per_node N -m SAMUSALib.cli train CONFIG``.

Both trainers (`lite`, `sam2`) use it the same way:

- `start(device)` joins the process group torchrun describes (``WORLD_SIZE``, ``RANK``,
  ``LOCAL_RANK``, ``MASTER_ADDR``...): gloo on the CPU, NCCL on CUDA with one GPU per local
  rank. Without torchrun it is a one-process context and nothing changes.
- Every step draws the same global plan on every rank (`step_rng`: which images, which
  get corrective clicks) and one generator per batch position (`sample_rngs`), so an
  image's prompts do not depend on the process that handles it; each rank then takes its
  contiguous share of the positions (`shard`).
- The model is wrapped in DistributedDataParallel through `StepModule`, a module whose
  ``forward`` runs the trainer's loss function, so DDP's gradient all-reduce works although
  the trainers call the model's parts (decoder heads, memory) rather than one ``forward``.
- `shard_loss` weighs each rank's loss terms by its share of the global batch (model
  terms by images, the boundary term by images with boundary points, counted over all
  ranks), so the averaged gradient is the gradient of the global batch's loss, exactly as
  one process computes it; the logged terms are the global batch's.
- Only rank 0 writes checkpoints, logs and runs validation (`is_main`); every rank reads
  the resume state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError


@dataclass
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """True under torchrun (or any launcher that sets WORLD_SIZE and RANK)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def start(device: str = "auto") -> Context:
    """Join torchrun's process group (gloo on CPU, NCCL on CUDA), or a one-process context."""
    if not launched():
        return Context()
    import torch.distributed as dist

    world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise InputError("device cuda was asked for under torchrun, but CUDA is not available here")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Context(rank, world, local_rank, backend)


def device_for(context: Context, device: str) -> str:
    """The device this rank trains on: its own GPU on CUDA, else the requested one."""
    if context.backend == "nccl":
        return f"cuda:{context.local_rank}"
    return "cpu" if context.enabled and device == "auto" else device


def stop(context: Context) -> None:
    if context.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(context: Context) -> None:
    if context.enabled:
        import torch.distributed as dist

        dist.barrier()


def check_batch(context: Context, batch: int) -> None:
    if batch % context.world:
        raise InputError(f"batch {batch} does not split over {context.world} processes; make it a multiple of {context.world}")


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The step's global plan, the same on every rank (and on resume)."""
    return np.random.default_rng([seed, step])


def sample_rngs(seed: int, step: int, count: int) -> list[np.random.Generator]:
    """One generator per batch position: an image's prompts whatever rank draws them."""
    return [np.random.default_rng([seed, step, position, 1]) for position in range(count)]


def shard(context: Context, count: int) -> range:
    """This rank's contiguous share of `count` batch positions."""
    per = count // context.world
    return range(context.rank * per, (context.rank + 1) * per)


class StepModule(torch.nn.Module):
    """Holds the trained model; ``forward(function, *args)`` returns ``function(model, *args)``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, function, *args, **kwargs):
        return function(self.model, *args, **kwargs)


def wrap(context: Context, model: torch.nn.Module) -> torch.nn.Module:
    """`StepModule(model)`, in DistributedDataParallel when there are several processes.
    Unused parameters (the boundary embedding on a batch without boundary points, the
    memory on image steps) are expected, hence find_unused_parameters."""
    step = StepModule(model)
    if not context.enabled:
        return step
    from torch.nn.parallel import DistributedDataParallel

    ids = [context.local_rank] if context.backend == "nccl" else None
    return DistributedDataParallel(step, device_ids=ids, find_unused_parameters=True)


def _sum(context: Context, values: torch.Tensor) -> torch.Tensor:
    if context.enabled:
        import torch.distributed as dist

        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def shard_loss(context: Context, parts: dict[str, torch.Tensor], *, local: int, total: int, with_points: int,
               weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss to back-propagate, the global batch's loss terms) from this rank's terms,
    which are means over its `local` images (the boundary term over its `with_points`)."""
    device = parts["loss"].device
    all_points = int(_sum(context, torch.tensor([float(with_points)], device=device)).item())
    scale = local / total
    boundary_scale = with_points / all_points if all_points else 0.0
    scaled = {k: v * (boundary_scale if k == "boundary" else scale) for k, v in parts.items() if k != "loss"}
    scaled["loss"] = scaled["model"] + weight * scaled["boundary"]
    names = list(scaled)
    logged = _sum(context, torch.stack([scaled[k].detach().float() for k in names]))
    # DDP averages gradients over the ranks: scaling by the world size leaves the sum.
    return scaled["loss"] * context.world, dict(zip(names, (float(v) for v in logged)))


def agree(context: Context, flag: bool) -> bool:
    """True on every rank when it is true on any (a wall-clock limit reached on one rank
    must stop them all at the same step, or the others would wait for it forever)."""
    if not context.enabled:
        return flag
    return bool(_sum(context, torch.tensor([1.0 if flag else 0.0])).item() > 0)
