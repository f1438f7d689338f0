"""Lesson 05, FSDP: the ZeRO arithmetic and the code every rank runs (notebook 05 prints it, the script runs it).

1. **ZeRO arithmetic.** Training state per parameter with Adam(W): the parameter, its gradient and two
   optimizer moments. Plain float32 keeps 4 + 4 + 8 = 16 bytes; classic mixed precision keeps a 2-byte
   copy and a 2-byte gradient for compute plus a float32 master copy and the moments: 2 + 2 + 12 = 16
   bytes as well. (FSDP2's ``MixedPrecisionPolicy`` keeps 4 + 4 + 8: float32 shards, gradient shards and
   moments; only the gathered parameters, the compute and the activations are bfloat16.) ZeRO stage 1
   shards the optimizer state across the ranks, stage 2 also the gradients, stage 3 (= FSDP's full
   sharding) also the parameters.
2. **The code of a rank**, short on purpose: ``setup_process_group``, ``shard_model``, ``train_epoch``
   (``course_lib.training.train_step`` on each of this rank's batches) and ``gather_full_state_dict`` (the
   export for inference).
3. **Start and resume**: a model built on the meta device and sharded (``shard_meta_model``), rank 0's
   seeded weights sent to every rank's shards (``load_full_state_dict``), a check that the ranks hold one
   model (``ranks_disagree``), and sharded DCP checkpoints of model, optimizer and epoch that resume on any
   world size (``save_checkpoint``, ``load_checkpoint``, ``latest_checkpoint``).

Only public torch APIs. The measuring runs of notebook 05 are in ``course_lib.tools.fsdp_lab``, the launcher
in ``course_lib.tools.launch``.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.nn.functional as F
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from course_lib.env import check_choice, check_int
from course_lib.training import train_step

# ----------------------------------------------------------------------------------------------
# 1. ZeRO arithmetic
# ----------------------------------------------------------------------------------------------

PARTS = ("params", "grads", "optimizer")
ZERO_STAGES = (0, 1, 2, 3)
SHARDED_FROM_STAGE = {"optimizer": 1, "grads": 2, "params": 3}  # the ZeRO stage that starts sharding each part


def bytes_per_param(precision: str = "fp32") -> dict[str, int]:
    """Bytes one parameter costs with Adam: ``fp32`` (4 + 4 + 8) or ``mixed`` (2 + 2 + 12, fp32 master in 12)."""
    check_choice("precision", precision, ("fp32", "mixed"))
    if precision == "fp32":
        return {"params": 4, "grads": 4, "optimizer": 8}  # optimizer: exp_avg + exp_avg_sq in float32
    return {"params": 2, "grads": 2, "optimizer": 12}  # optimizer: fp32 master copy + exp_avg + exp_avg_sq


def zero_bytes_per_rank(n_params: int, world_size: int, stage: int, precision: str = "fp32") -> dict[str, float]:
    """Bytes each rank holds for params, grads and optimizer state at a ZeRO ``stage`` (0 = DDP, 3 = FSDP)."""
    check_int("n_params", n_params, min_value=1)
    check_int("world_size", world_size, min_value=1)
    check_choice("stage", stage, ZERO_STAGES)
    per_param = bytes_per_param(precision)
    return {part: n_params * per_param[part] / (world_size if stage >= SHARDED_FROM_STAGE[part] else 1)
            for part in PARTS}


def shard_rows(dim0: int, world_size: int) -> list[int]:
    """Rows of a tensor's dim 0 that each rank holds under FSDP2 (``torch.chunk``: ceil-sized, last ones short)."""
    check_int("dim0", dim0, min_value=1)
    check_int("world_size", world_size, min_value=1)
    chunk = math.ceil(dim0 / world_size)
    return [max(0, min(chunk, dim0 - rank * chunk)) for rank in range(world_size)]


def padding_elements(shape: tuple[int, ...], world_size: int) -> int:
    """Elements FSDP2 pads per rank so every rank's shard of ``shape`` has the same size, summed over ranks."""
    rows = shard_rows(shape[0], world_size)
    return sum(max(rows) - r for r in rows) * math.prod(shape[1:])


# ----------------------------------------------------------------------------------------------
# 2. The code of a rank: join the group, shard, step, gather (printed in notebook 05)
# ----------------------------------------------------------------------------------------------

def choose_backend(ranks_per_machine: int) -> tuple[str, str]:
    """``("nccl", "cuda")`` when this machine has a GPU per rank, else ``("gloo", "cpu")``."""
    if torch.cuda.is_available() and torch.cuda.device_count() >= ranks_per_machine:
        return "nccl", "cuda"
    return "gloo", "cpu"


def setup_process_group(timeout_s: float = 60.0) -> torch.device:
    """Join the process group described by the environment (torchrun sets it); return this rank's device."""
    local_rank, ranks_here = int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"])
    backend, device_type = choose_backend(ranks_here)
    device = torch.device("cuda", local_rank) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # env:// reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE. A gloo collective that waits longer than
    # the timeout raises; NCCL's watchdog aborts the process instead. Default: 10 to 30 minutes.
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return device


def shard_model(model: nn.Module, device: torch.device | None = None, **options: object) -> nn.Module:
    """FSDP2: each block (here each layer) becomes one unit, then the root; parameters become DTensor shards.

    ``device`` (default: where the parameters are) names the mesh's device type; ``options`` go to every
    ``fully_shard`` call (``reshard_after_forward``, ``mp_policy``, ``offload_policy``).
    """
    device_type = device.type if device is not None else next(model.parameters()).device.type
    mesh = init_device_mesh(device_type, (dist.get_world_size(),))  # a 1-D mesh: shard over all ranks
    for block in model.children():  # one unit per block: all-gathered just before it runs
        fully_shard(block, mesh=mesh, **options)
    fully_shard(model, mesh=mesh, **options)  # the root last: it owns what no block took
    return model


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: torch.utils.data.DataLoader,
                device: torch.device, max_steps: int | None = None) -> torch.Tensor:
    """One pass over this rank's batches (at most ``max_steps``); return each step's loss averaged over the ranks."""
    model.train()
    losses = torch.stack([train_step(model, optimizer, F.cross_entropy, X.to(device), y.to(device)).detach()
                          for X, y in itertools.islice(loader, max_steps)]).double()
    dist.all_reduce(losses)  # one collective per epoch: each step's loss summed over the ranks
    return losses / dist.get_world_size()


def gather_full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full, unsharded weights as plain CPU tensors on rank 0 (empty elsewhere); every rank must call it."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


def fsdp_units(model: nn.Module) -> list[str]:
    """Names of the FSDP units that own parameters: each issues its own all-gathers and reduce-scatter."""
    return [name for name, module in model.named_modules()
            if isinstance(module, FSDPModule) and any(True for _ in module.parameters(recurse=False))]


@contextmanager
def one_process_group(timeout_s: float = 30.0) -> Iterator[DeviceMesh]:
    """A gloo process group of this process alone (world size 1) and its 1-D CPU mesh, destroyed on exit."""
    if dist.is_initialized():
        raise RuntimeError("this process already has a process group; call dist.destroy_process_group() first")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1, timeout=timedelta(seconds=timeout_s))
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------
# 3. Start without the full model (meta device), check the ranks agree, checkpoints that resume
# ----------------------------------------------------------------------------------------------

def shard_meta_model(model: nn.Module, device: torch.device) -> nn.Module:
    """FSDP2 on a model built on the meta device: ``fully_shard`` per block then the root, then this rank's shards.

    A model built under ``torch.device("meta")`` has shapes but no memory, so no rank's device ever holds all
    of it (the full weights come from rank 0's CPU copy, ``load_full_state_dict``). ``to_empty`` then
    allocates this rank's shards on ``device``, uninitialised: load weights next (``load_full_state_dict``).
    """
    return shard_model(model, device).to_empty(device=device)


def load_full_state_dict(model: nn.Module, full_state: dict[str, torch.Tensor]) -> None:
    """Copy rank 0's full weights into every rank's shards; ranks other than 0 pass ``{}``. Every rank must call it.

    FSDP2, unlike DDP, never broadcasts weights itself: ranks that started from different weights would
    train a model stitched from unrelated shards, silently. ``broadcast_from_rank0`` sends each tensor
    from rank 0, and each rank keeps its own rows.
    """
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full_state, options=options)


def ranks_disagree(model: nn.Module) -> list[str]:
    """Names of the parameters whose values differ between the ranks (none: one model); every rank must call it.

    Call it on the full model each rank built, before ``fully_shard``. FSDP2 does not broadcast rank 0's
    weights (DDP does): ranks seeded differently would each keep their rows of a different random matrix.
    Each rank sends a fingerprint per parameter (its sum and its sum of squares, in float64) to all others.
    """
    fingerprint = torch.stack([torch.stack([p.detach().double().sum(), p.detach().double().square().sum()])
                               for p in model.parameters()]).cpu()
    every_rank = [torch.empty_like(fingerprint) for _ in range(dist.get_world_size())]
    dist.all_gather(every_rank, fingerprint)
    return [name for i, (name, _) in enumerate(model.named_parameters())
            if any(not torch.equal(other[i], every_rank[0][i]) for other in every_rank)]


def save_checkpoint(directory: Path | str, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int) -> Path:
    """Save model, optimizer state and ``epoch`` as a DCP checkpoint ``directory/epoch-<epoch>``; return its path.

    Every rank must call it: each writes its own shards, in parallel (``torch.distributed.checkpoint``),
    and nothing is gathered. Only tensors are saved (the optimizer's hyperparameters come from the
    command line), so ``load_checkpoint`` reads them back with ``torch.load(..., weights_only=True)``.
    """
    model_state, optimizer_state = get_state_dict(model, optimizer)
    path = Path(directory) / f"epoch-{epoch}"
    dcp.save({"model": model_state, "optimizer": optimizer_state["state"], "epoch": torch.tensor(epoch)},
             checkpoint_id=path)
    return path


def load_checkpoint(path: Path | str, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load a ``save_checkpoint`` checkpoint into ``model`` and ``optimizer``; return its epoch.

    Every rank must call it, on any world size: DCP reads from the saved shards the rows each rank now holds.
    """
    model_state, optimizer_state = get_state_dict(model, optimizer)  # this run's shards, to be filled in
    state = {"model": model_state, "optimizer": optimizer_state["state"], "epoch": torch.tensor(0)}
    dcp.load(state, checkpoint_id=path)
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict={**optimizer_state, "state": state["optimizer"]})
    return int(state["epoch"])


def checkpoint_epochs(directory: Path | str) -> dict[int, Path]:
    """The complete checkpoints ``save_checkpoint`` may have written in ``directory``: ``{epoch: epoch-N folder}``."""
    folders = Path(directory).glob("epoch-*") if Path(directory).is_dir() else []
    return {int(f.name.removeprefix("epoch-")): f for f in folders
            if f.name.removeprefix("epoch-").isdigit() and (f / ".metadata").is_file()}  # DCP writes it last


def checkpoint_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The tensors ``save_checkpoint`` writes for ``model`` trained with Adam(W), and their global shapes."""
    shapes = {f"model.{name}": tuple(t.shape) for name, t in model.state_dict().items()}
    for name, param in model.named_parameters():
        shapes.update({f"optimizer.{name}.step": (), f"optimizer.{name}.exp_avg": tuple(param.shape),
                       f"optimizer.{name}.exp_avg_sq": tuple(param.shape)})
    return {**shapes, "epoch": ()}


def latest_checkpoint(directory: Path | str, model: nn.Module) -> tuple[Path, int]:
    """The newest checkpoint of ``model`` in ``directory``, and its epoch; else ``ValueError`` saying what was expected.

    Only the checkpoint's metadata is read (``model`` may be on the meta device): it must hold exactly the
    tensors ``save_checkpoint`` writes for this model, with the same shapes. DCP's metadata file is a
    pickle: resume only from checkpoints you trust.
    """
    expected = (f"epoch-N folders of DCP checkpoints holding this {type(model).__name__}, its AdamW state and the "
                "epoch (save_checkpoint)")
    epochs = checkpoint_epochs(directory)
    if not epochs:
        raise ValueError(f"expected {expected} in {directory}, found none")
    epoch = max(epochs)
    try:
        metadata = dcp.FileSystemReader(epochs[epoch]).read_metadata().state_dict_metadata
    except Exception as exc:  # noqa: BLE001 - any unreadable metadata is a foreign folder
        raise ValueError(f"expected {expected}, but {epochs[epoch]} is not readable ({exc})") from None
    found = {key: tuple(getattr(meta, "size", ("not a tensor",))) for key, meta in metadata.items()}
    wanted = checkpoint_shapes(model)
    if found != wanted:
        key = min(wanted.keys() ^ found.keys() or {k for k in wanted if wanted[k] != found[k]})
        detail = (f"{key} has shape {found[key]}, expected {wanted[key]}" if key in wanted and key in found
                  else f"{key} is {'missing' if key in wanted else 'not expected'}")
        raise ValueError(f"expected {expected}, but {epochs[epoch]} holds other tensors: {detail}")
    return epochs[epoch], epoch
