"""Distributed trials: every rank of a torchrun/accelerate job trains with rank 0's parameters.

``Trainer.hyperparameter_search`` samples on each rank separately, so the ranks of one
trial train different models (transformers#18609). Here only rank 0 talks to the study;
it broadcasts each trial's parameters and each pruning verdict to the other ranks.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["finish", "is_distributed", "rank", "share"]


def is_distributed() -> bool:
    """Whether this process is one rank of several (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _ensure_group() -> None:
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def share(obj: Any) -> Any:
    """Rank 0's ``obj``, on every rank (``broadcast_object_list``); ``obj`` itself when not distributed."""
    if not is_distributed():
        return obj
    import torch.distributed as dist

    _ensure_group()
    box = [obj if rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish() -> None:
    """Tear the process group down on every rank at the end of a distributed command.

    Left to interpreter exit, the group's threads can be destroyed while still running, and
    a rank aborts after its work is done ("terminate called without an active exception",
    SIGABRT, so torchrun fails the job): seen once in CI under load, in the two-rank tune
    test, after both trials and best.yaml were written.
    """
    if not is_distributed():
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
