"""Multi-process training on ``torch.distributed``, as launched by ``torchrun``.

    torchrun --nproc_per_node=N -m himnet_fast.train [options]

Data parallel, by hand (no DDP wrapper, so that switched-off losses leave no unused-parameter
bookkeeping): every rank holds the same model (rank 0's weights are broadcast at the start),
draws its own batch of the one seeded batch stream (rank r takes batches r, N + r, 2N + r, ...
of the single-process stream: ``data.TrainBatches(rank=, world_size=)``), and after the backward
pass the gradients and the step's loss values are averaged over ranks in one all-reduce.
A step on N ranks thus equals one process stepping on the mean loss of the same N batches:
the global batch is N x ``--batch-size`` videos (the learning rate is not rescaled).

Backends: gloo on CPU, NCCL on CUDA (rank r uses ``cuda:<LOCAL_RANK>``). Rank 0 evaluates,
writes the outputs and the checkpoints (which hold every rank's RNG and batch-stream state);
every rank reads the checkpoint on ``--resume`` or after a ``torchrun --max-restarts`` restart,
so the output folder must be on a file system all ranks share.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, List, Sequence

import torch
import torch.distributed as dist

# Rank 0 evaluates and writes outputs while the others wait in the next collective: the
# timeout must cover a full evaluation of a large test set, not only a training step.
COLLECTIVE_TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` (1: no torch.distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the rank that evaluates and writes (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def init_world(device: str) -> World:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); a single process otherwise."""
    size = _launched_world_size()
    if size <= 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if on_gpu else "gloo", timeout=COLLECTIVE_TIMEOUT,
                                store=_attempt_store(rank, size), rank=rank, world_size=size)
    return World(rank, size, local_rank)


def _launched_world_size() -> int:
    """The number of processes ``torchrun`` started (its ``WORLD_SIZE``; 1 when not under it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _attempt_store(rank: int, size: int) -> dist.Store:
    """The rendezvous store of ``MASTER_ADDR:MASTER_PORT``, with keys prefixed by torchrun's
    restart count. Why: after a ``--max-restarts`` restart the agent's store still holds the dead
    workers' gloo addresses, and a new rank that reads one before rank 0 rewrites it connects to
    nothing (measured with torch 2.14: "Gloo connectFullMesh failed ... Connection refused")."""
    agent_hosts = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # else rank 0 hosts it
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size=size,
                          is_master=rank == 0 and not agent_hosts, timeout=COLLECTIVE_TIMEOUT,
                          multi_tenant=not agent_hosts)
    return dist.PrefixStore(f"himnet_fast/attempt{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def rank_device(device: str, world: World) -> str:
    """The device of this rank: ``cuda`` becomes ``cuda:<LOCAL_RANK>`` under torchrun."""
    if world.active and device == "cuda":
        return f"cuda:{world.local_rank}"
    return device


def shutdown(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()


def exit_worker(code: int) -> None:
    """End the process with ``code``. A ``torchrun`` worker (WORLD_SIZE > 1) exits at once with
    ``os._exit`` after flushing stdout and stderr, skipping Python's finalization; a single
    process returns (the caller exits normally). Call it last, after :func:`shutdown`.

    Why: a Gloo worker thread can still be releasing a finished collective (its ``AsyncWork``)
    after this rank has moved on, and ``destroy_process_group`` does not join those threads.
    The release drops tensors whose Python objects need the GIL. If the main thread has reached
    interpreter finalization by then, taking the GIL calls ``pthread_exit``, whose forced unwind
    through a ``noexcept`` destructor aborts the process: "terminate called without an active
    exception", SIGABRT, after all the work is done. Seen here about once in 50-100 two-process
    runs on a loaded machine; a core dump showed that exact stack (``ProcessGroupGloo::runLoop``
    -> ``~AsyncAllreduceWork`` -> ``THPVariable_dealloc`` -> ``take_gil`` -> ``pthread_exit``)
    with the main thread in ``Py_FinalizeEx``."""
    if _launched_world_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def broadcast_object(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not world.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, world: World) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not world.active:
        return [obj]
    out: List[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast_parameters(module: torch.nn.Module, world: World) -> None:
    """Give every rank rank 0's weights and buffers."""
    if world.active:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: Sequence[torch.nn.Parameter], values: torch.Tensor, world: World) -> torch.Tensor:
    """Average the gradients of ``params`` and the 1-D tensor ``values`` (the step's loss terms)
    over ranks, in one all-reduce; returns the averaged ``values``. Every rank must hold the
    same set of gradients (the same losses switched on), which one configuration guarantees."""
    if not world.active:
        return values
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads] + [values.reshape(-1).to(grads[0].dtype if grads else values.dtype)])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
    return flat[offset:].to(values.dtype)


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()

