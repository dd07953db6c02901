"""Training on several processes with PyTorch's DistributedDataParallel (DDP), started by torchrun.

    torchrun --nproc_per_node=4 -m cyclegan_edu train --data DIR --out RUN            # one machine, 4 GPUs
    torchrun --nnodes=2 --node_rank=R --nproc_per_node=4 --rdzv_backend=c10d \\
             --rdzv_endpoint=HOST:29500 --rdzv_id=RUN -m cyclegan_edu train ...       # two machines

torchrun starts one process per device and tells each where it stands in environment variables
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). :func:`process_group`
joins them into one process group: NCCL on CUDA (process ``LOCAL_RANK`` drives ``cuda:LOCAL_RANK``),
Gloo on the CPU. A process that torchrun did not start is a plain single-process run, which
nothing here changes. What a run of W processes does differently:

* **Data.** Each process trains on its own share of every epoch: rank r takes every W-th image of
  the epoch's order (:class:`~cyclegan_edu.data.EpochSampler`, the role of torch's
  ``DistributedSampler``). The B partner of each A image, its crop and flip are drawn from
  ``(seed, epoch, index)``, so each process draws its own, and together they draw what one process
  would have drawn. Each process keeps its own image pools of the fakes it made, and ranks other
  than 0 their own random streams for dropout and the pools' draws (:func:`rank_seed`).
* **Gradients.** The four networks are wrapped in ``DistributedDataParallel`` (:func:`wrap`): the
  backward pass averages every gradient over the processes, so each takes the same optimizer step
  and the weights stay identical everywhere.
* **Effective batch and learning rate.** ``batch_size`` is per process: one step trains on
  ``W × batch_size`` images (:func:`effective_batch_size`). The learning rate is *not* scaled: as
  the gradient is the mean over all ``W × batch_size`` images, a step is that of one process with
  batch ``W × batch_size`` at the same learning rate. This is the official implementation's
  multi-GPU rule (its ``--batch_size`` is split over ``--gpu_ids``, with lr 2e-4 whatever the batch);
  the paper trains with batch 1. An epoch has W times fewer steps (epoch schedules keep their
  epochs), and ``iters`` counts steps of the effective batch.
* **Files.** Rank 0 alone writes the run directory (checkpoint, history, config.json), shows the
  progress bar and runs the callbacks (sample grids, evaluations). Checkpoints hold the unwrapped
  networks, so any number of processes resumes them, a single process included.

**The generator step with frozen discriminators.** CycleGAN's step updates G and F with D_X and
D_Y frozen (``requires_grad=False``), then the discriminators; pix2pix the other way round. DDP
is built with ``find_unused_parameters=False``: its reducer expects, in a backward pass that reaches
a wrapped network, a gradient for every one of that network's parameters, and all-reduces each
bucket of gradients as it fills. That holds here for each backward pass and each network, because
each step keeps one rule: a network's parameters either all require gradients and are all used
(every layer of these networks runs in every forward pass), or none does. In the generator step
the discriminators' parameters are frozen, so the loss flows *through* D into G, but no gradient of
D is computed and none of D's all-reduces is started; D's reducer, which prepared for a backward pass
at its forward, sees none of its hooks fire and has nothing to finish. In the discriminator step
the fakes are detached, so G's reducer is not involved. Each backward pass is followed by its own
optimizer's step, G's before D's as in the official order: every all-reduce of a backward pass is
over when ``backward()`` returns, so each optimizer reads gradients already averaged, and each
process issues the same collectives in the same order. Wrapping a network whose parameters were
partly frozen, or using a layer only sometimes, would break the rule; DDP then stops at the next
step with an error listing the parameters that got no gradient, rather than training wrongly
(``find_unused_parameters=True`` would instead search the graph at every forward pass). ``tests/test_distributed.py`` checks that the
discriminators are all-reduced once a step, not in the generator step, and that two processes
with batch 1 train as one with batch 2.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .devices import select_device

TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return all(name in os.environ for name in TORCHRUN_ENV)


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank, 0 to ``world_size() - 1``; 0 outside a multi-process run."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """The number of processes training together; 1 outside a multi-process run."""
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True for the process that writes files and prints: rank 0, or the only process."""
    return rank() == 0


def effective_batch_size(batch_size: int) -> int:
    """Images per optimizer step over all processes: ``world_size() × batch_size``."""
    return world_size() * batch_size


def describe(batch_size: int, lr: float) -> str:
    """One line saying how the processes share a step: the effective batch and the learning-rate rule."""
    w = world_size()
    return (f"distributed: {w} processes ({dist.get_backend()}) × batch {batch_size} = effective batch "
            f"{effective_batch_size(batch_size)}; learning rate {lr:g}, not scaled: gradients are averaged over "
            f"the processes, so a step is that of one process with batch {effective_batch_size(batch_size)} "
            "(the official multi-GPU rule)")


@contextlib.contextmanager
def process_group(device: str = "auto"):
    """Join torchrun's process group for the run's ``device`` (NCCL for CUDA, Gloo for the CPU) and
    leave it at the end. Nothing happens in a process that torchrun did not start, or when a group
    exists already (the caller's, which it keeps)."""
    if not launched_by_torchrun() or is_initialized():
        yield
        return
    kind = select_device(device).type
    if kind not in ("cuda", "cpu"):
        raise ValueError(f"device={device!r}: distributed training runs on CUDA (NCCL) or the CPU (Gloo); "
                         "use --device cuda or --device cpu")
    device_id = None
    if kind == "cuda":
        local, visible = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
        if local >= visible:
            raise ValueError(f"process LOCAL_RANK={local} has no GPU of its own ({visible} visible); start torchrun "
                             f"with --nproc_per_node={visible} or fewer")
        device_id = torch.device("cuda", local)
        torch.cuda.set_device(device_id)     # "cuda" now means this process's GPU
    dist.init_process_group("nccl" if kind == "cuda" else "gloo", device_id=device_id)
    try:
        yield
    finally:
        dist.destroy_process_group()


def wrap(model: nn.Module) -> None:
    """Put each network of ``model`` (each child with parameters) in ``model.ddp`` wrapped in
    ``DistributedDataParallel``, which the training step calls instead of the network; the networks
    themselves, their ``state_dict`` and ``translate`` stay as they are. Nothing happens without a
    process group. The wrappers broadcast rank 0's weights, so all processes start alike."""
    if not is_initialized():
        return
    for name, net in model.named_children():
        params = list(net.parameters())
        if params:
            device = params[0].device
            model.ddp[name] = DistributedDataParallel(
                net, device_ids=[device] if device.type == "cuda" else None,
                find_unused_parameters=False)    # see the module docstring: the frozen-D rule makes it safe


def check_same(value, what: str, fix: str) -> None:
    """Raise ValueError unless every process holds the same ``value`` (a collective: all must call it)."""
    if not is_initialized():
        return
    values = [None] * world_size()
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        raise ValueError(f"the processes disagree on {what} ({', '.join(f'rank {r}: {v}' for r, v in enumerate(values))}); "
                         f"{fix}")


def rank_seed(seed: int, step: int) -> int:
    """A seed for the random streams (dropout, the image pools) of a rank other than 0 from step
    ``step`` on, drawn from ``(seed, rank, step)``: each process draws its own, and a resumed run
    draws the same as before. Rank 0 keeps the run's own streams, which its checkpoints hold."""
    return int(np.random.SeedSequence([seed, rank(), step]).generate_state(1)[0])
