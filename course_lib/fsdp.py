"""Lesson 05, FSDP: the ZeRO arithmetic, the code every rank runs, and a launcher for a notebook.

1. **ZeRO arithmetic.** Training state per parameter with Adam(W): the parameter, its gradient and two
   optimizer moments. Plain float32 keeps 4 + 4 + 8 = 16 bytes; classic mixed precision keeps a 2-byte
   copy and a 2-byte gradient for compute plus a float32 master copy and the moments: 2 + 2 + 12 = 16
   bytes as well. (FSDP2's ``MixedPrecisionPolicy`` keeps 4 + 4 + 8: float32 shards, gradient shards and
   moments; only the gathered parameters, the compute and the activations are bfloat16.) ZeRO stage 1
   shards the optimizer state across the ranks, stage 2 also the gradients, stage 3 (= FSDP's full
   sharding) also the parameters.
2. **The lesson's code**, short on purpose (notebook 05 prints it): ``setup_process_group``,
   ``shard_model``, ``train_step`` and ``gather_full_state_dict``.
3. **Runs and results.** ``run_rank`` is what every rank of notebook 05 executes, started by ``launch``
   (from a notebook or a test): it trains each ``RunSpec`` (``"single"``, ``"ddp"`` or ``"fsdp"``) with
   measuring probes, the runs taking turns one step each so that their step times are comparable, and
   returns one ``RankResult`` per run.
4. **The launcher.** ``launch`` starts the ranks with ``torch.multiprocessing.start_processes``; torch
   raises the failing rank's traceback and stops the others, the process-group timeout ends a hung
   collective, and each launch writes into its own folder (``new_run_dir``).
5. **The script's building blocks** (``scripts/train_pytorch_fsdp.py``, no probes): a model built on the
   meta device and sharded (``shard_meta_model``), rank 0's seeded weights sent to every rank's shards
   (``load_full_state_dict``), and sharded DCP checkpoints of model, optimizer and epoch that resume on any
   world size (``save_checkpoint``, ``load_checkpoint``, ``latest_checkpoint``).
"""

from __future__ import annotations

import math
import os
import pickle
import shutil
import socket
import sys
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple, NoReturn

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
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
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, OffloadPolicy, fully_shard
from torch.distributed.fsdp._fully_shard._fsdp_collectives import DefaultAllGather, DefaultReduceScatter
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

from course_lib.data import digits_split, rank_batches
from course_lib.env import check_bool, check_choice, check_float, check_int, output_dir
from course_lib.memory import storage_bytes, tensor_bytes
from course_lib.models import SimpleCNN
from course_lib.timing import Timer
from course_lib.training import evaluate

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
# 2. The lesson's code: join the group, shard, step, gather (printed in notebook 05)
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
    # env:// reads MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE. A collective that waits longer than
    # the timeout raises, instead of blocking for the default 10 to 30 minutes.
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return device


def shard_model(model: nn.Module, **options: object) -> nn.Module:
    """FSDP2: each block (here each layer) becomes one unit, then the root; parameters become DTensor shards."""
    device_type = next(model.parameters()).device.type
    mesh = init_device_mesh(device_type, (dist.get_world_size(),))  # a 1-D mesh: shard over all ranks
    for block in model.children():  # one unit per block: gathered one block (two with prefetch) at a time
        fully_shard(block, mesh=mesh, **options)
    fully_shard(model, mesh=mesh, **options)  # the root last: it owns what no block took
    return model


@contextmanager
def one_process_group(timeout_s: float = 30.0) -> Iterator[DeviceMesh]:
    """A gloo process group of this process alone (world size 1) and its 1-D CPU mesh, destroyed on exit."""
    if dist.is_initialized():
        raise RuntimeError("this process already has a process group; call dist.destroy_process_group() first")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
                            timeout=timedelta(seconds=timeout_s))
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One optimizer step on this rank's part of the batch; DDP and FSDP average the gradients across ranks."""
    optimizer.zero_grad()
    loss = F.cross_entropy(model(X), y)  # FSDP: all-gather each unit just before its forward, free it after
    loss.backward()  # all-gather again per unit, then reduce-scatter its gradients: each rank keeps 1/N
    optimizer.step()  # each rank updates only its own shard
    return loss


def gather_full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full, unsharded weights as plain CPU tensors on rank 0 (empty elsewhere); every rank must call it."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)


# ----------------------------------------------------------------------------------------------
# 3. Runs and their results
# ----------------------------------------------------------------------------------------------

STRATEGIES = ("single", "ddp", "fsdp")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
PROFILED_STEP = 2  # not 0 (FSDP's lazy init) nor 1 (DDP rebuilds its gradient buckets once, with 2 broadcasts)
# Profiler events that tell the FSDP story (FSDP2's own labels) and the collectives themselves.
_TRACE_PREFIXES = ("FSDP::pre_forward", "FSDP::post_forward", "FSDP::pre_backward", "FSDP::all_gather (",
                   "FSDP::backward_prefetch", "FSDP::post_backward_reduce", "c10d::", "gloo:", "nccl:")
_COLLECTIVES = {"c10d::_allgather_base_": "all_gather", "c10d::allgather_into_tensor_coalesced_": "all_gather",
                "c10d::_reduce_scatter_base_": "reduce_scatter", "c10d::reduce_scatter_tensor_coalesced_":
                "reduce_scatter", "c10d::allreduce_": "all_reduce", "c10d::broadcast_": "broadcast"}


@dataclass(frozen=True)
class RunSpec:
    """One training run: strategy, data, model size and the FSDP options to try."""

    name: str
    strategy: str = "fsdp"
    epochs: int = 2
    max_steps: int | None = None  # stop early (a short run for a measurement)
    global_batch_size: int = 96  # split evenly across ranks
    lr: float = 3e-3
    seed: int = 0
    channels: tuple[int, int] = (32, 64)
    hidden: int = 320
    dtype: str = "float32"
    reshard_after_forward: bool = True  # False keeps gathered parameters from forward to backward (ZeRO-2-like)
    mixed_precision: bool = False  # bfloat16 gathered parameters and compute, float32 gradient reduction
    cpu_offload: bool = False  # keep shards and optimizer state in CPU memory (pin_memory=False)
    profile: bool = False  # record the collectives of one steady-state step with the autograd profiler

    def __post_init__(self) -> None:
        check_choice("strategy", self.strategy, STRATEGIES)
        check_int("epochs", self.epochs, min_value=1)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, min_value=1)
        check_int("global_batch_size", self.global_batch_size, min_value=1)
        check_float("lr", self.lr, min_value=0.0, min_inclusive=False)
        check_int("seed", self.seed, min_value=0)
        check_int("hidden", self.hidden, min_value=1)
        check_choice("dtype", self.dtype, DTYPES)
        for flag in ("reshard_after_forward", "mixed_precision", "cpu_offload", "profile"):
            check_bool(flag, getattr(self, flag))
        if self.strategy != "fsdp" and (self.mixed_precision or self.cpu_offload or not self.reshard_after_forward):
            raise ValueError(f"mixed_precision, cpu_offload and reshard_after_forward=False are FSDP options; "
                             f"run {self.name!r} has strategy {self.strategy!r}")

    def check_world_size(self, world_size: int) -> None:
        """Refuse a global batch that does not split evenly across ``world_size`` ranks."""
        if self.global_batch_size % world_size:
            raise ValueError(f"global_batch_size must be divisible by world_size ({world_size}), "
                             f"got {self.global_batch_size} in run {self.name!r}")


@dataclass(frozen=True)
class ParamShard:
    """One parameter as this rank holds it."""

    name: str
    global_shape: tuple[int, ...]
    local_shape: tuple[int, ...]
    placements: tuple[str, ...]  # e.g. ("S(0)",): rows of dim 0 split across the ranks
    dtype: str


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``: the name printed in results and tables."""
    return str(dtype).removeprefix("torch.")


class Collective(NamedTuple):
    """One all-gather or reduce-scatter FSDP issued: its unit, dtype, bytes, and who held full parameters then."""

    unit: str
    dtype: str
    nbytes: int  # all-gather: its output (the unit's full parameters); reduce-scatter: its input (full gradients)
    resident: tuple[str, ...] = ()  # all-gather: the units holding full parameters once it is issued


class StepEvent(NamedTuple):
    """One bar of the profiled step's timeline: a row, the unit it belongs to, start and end in ms."""

    row: str  # "all-gather", "forward compute", "backward compute" or "reduce-scatter"
    unit: str  # "fc1", or "fc1 (prefetch)" for an all-gather issued ahead by the unit after it
    start_ms: float
    end_ms: float


@dataclass
class RankResult:
    """What one rank measured in one run."""

    strategy: str
    units: list[str]  # FSDP units that own parameters (empty unless FSDP)
    shards: list[ParamShard]
    losses: list[float] = field(default_factory=list)  # per step, averaged over the ranks
    epoch_losses: list[float] = field(default_factory=list)
    test_accuracy: float = float("nan")
    memory: dict[str, int] = field(default_factory=dict)  # bytes of each part; "<part>_allocated": with padding
    seconds_per_step: float = float("nan")  # median, the first (warm-up) step left out
    fastest_step_seconds: float = float("nan")  # the least disturbed step: what load on the machine cannot inflate
    gathered_during_forward: dict[str, int] = field(default_factory=dict)  # FSDP's first step, per unit
    gathered_after_forward: int = 0
    collectives: dict[str, int] = field(default_factory=dict)  # in the profiled step
    trace: list[str] = field(default_factory=list)  # FSDP's labels and collectives of the profiled step, in order
    timeline: list[StepEvent] = field(default_factory=list)  # the profiled step as bars, in time order
    all_gathers: list[Collective] = field(default_factory=list)  # FSDP runs: each all-gather of step PROFILED_STEP
    reduce_scatters: list[Collective] = field(default_factory=list)  # and each reduce-scatter of that step
    dtypes: dict[str, str] = field(default_factory=dict)  # FSDP runs: the dtype of each kind of tensor


def build_model(spec: RunSpec, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """Return ``(model to train, plain module inside it)`` for the run's strategy, on ``device``."""
    torch.manual_seed(spec.seed)  # the same initial weights on every rank and in every strategy
    plain = SimpleCNN(channels=spec.channels, hidden=spec.hidden).to(device, DTYPES[spec.dtype])
    if spec.strategy == "ddp":
        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(plain, device_ids=device_ids), plain
    if spec.strategy == "fsdp":
        mixed = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32,
                                     output_dtype=torch.float32)
        shard_model(plain, reshard_after_forward=spec.reshard_after_forward,
                    mp_policy=mixed if spec.mixed_precision else MixedPrecisionPolicy(),
                    offload_policy=CPUOffloadPolicy(pin_memory=False) if spec.cpu_offload else OffloadPolicy())
    return plain, plain


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t  # a DTensor's shard on this rank


def memory_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this rank holds for parameters, gradients and optimizer moments ('step' counters excluded).

    ``<part>`` counts the elements of the local tensors; ``<part>_allocated`` the storages behind them,
    which include FSDP's padding.
    """
    params = list(model.parameters())
    grads = [p.grad for p in params if p.grad is not None]
    moments = [v for state in optimizer.state.values() for k, v in state.items() if k != "step"]
    report = {}
    for part, tensors in (("params", params), ("grads", grads), ("optimizer", moments)):
        local = [_local(t) for t in tensors]
        report[part], report[f"{part}_allocated"] = tensor_bytes(local), storage_bytes(local)
    return report


def shard_facts(model: nn.Module) -> list[ParamShard]:
    """Every parameter's global and local shape, placements and dtype on this rank."""
    return [ParamShard(name, tuple(p.shape), tuple(_local(p).shape),
                       tuple(str(pl) for pl in p.placements) if isinstance(p, DTensor) else ("Replicate (plain)",),
                       dtype_name(p.dtype)) for name, p in model.named_parameters()]


def fsdp_units(model: nn.Module) -> list[str]:
    """Names of the FSDP units that own parameters: each issues its own all-gathers and reduce-scatter."""
    return [name for name, module in model.named_modules()
            if isinstance(module, FSDPModule) and any(True for _ in module.parameters(recurse=False))]


@contextmanager
def gathered_bytes(model: nn.Module) -> Iterator[dict[str, int]]:
    """Record the bytes of full (gathered) parameters while each block runs forward, and once forward is done."""
    record: dict[str, int] = {}

    def note(key: str) -> Callable[..., None]:
        return lambda *_: record.__setitem__(key, tensor_bytes(
            p for p in model.parameters() if not isinstance(p, DTensor)))  # FSDP swaps gathered blocks to plain

    # prepend: a block's hook runs before FSDP's own, which reshards it; the root's runs after FSDP's
    handles = [block.register_forward_hook(note(name), prepend=True) for name, block in model.named_children()]
    handles.append(model.register_forward_hook(note("")))
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()


def holds_full_parameters(unit: FSDPModule) -> bool:
    """Whether ``unit``'s full parameters are in memory now: gathered, or their all-gather issued (FSDP2 internals)."""
    return any(group.is_unsharded or group._all_gather_result is not None
               for group in unit._get_fsdp_state()._fsdp_param_groups)


@dataclass
class CollectiveLog:
    """What the counting collectives record while ``recording`` is on."""

    recording: bool = False
    all_gathers: list[Collective] = field(default_factory=list)
    reduce_scatters: list[Collective] = field(default_factory=list)


class CountingAllGather(DefaultAllGather):
    """FSDP2's default all-gather, recording each call's unit, dtype, bytes and the units holding full parameters."""

    def __init__(self, unit: str, units: dict[str, FSDPModule], log: CollectiveLog) -> None:
        self.unit, self.units, self.log = unit, units, log

    def __call__(self, output_tensor: torch.Tensor, input_tensor: torch.Tensor, group: dist.ProcessGroup,
                 async_op: bool = False) -> dist.Work | None:
        if self.log.recording:  # this unit is not marked as gathering yet: FSDP does so once the call returns
            resident = tuple(name for name, unit in self.units.items()
                             if name == self.unit or holds_full_parameters(unit))
            self.log.all_gathers.append(Collective(self.unit, dtype_name(output_tensor.dtype),
                                                   output_tensor.nbytes, resident))
        return super().__call__(output_tensor, input_tensor, group, async_op)


class CountingReduceScatter(DefaultReduceScatter):
    """FSDP2's default reduce-scatter, recording each call's unit, dtype and input bytes."""

    def __init__(self, unit: str, log: CollectiveLog) -> None:
        self.unit, self.log = unit, log

    def __call__(self, output_tensor: torch.Tensor, input_tensor: torch.Tensor, group: dist.ProcessGroup,
                 op: object, async_op: bool = False) -> dist.Work | None:
        if self.log.recording:
            self.log.reduce_scatters.append(Collective(self.unit, dtype_name(input_tensor.dtype),
                                                       input_tensor.nbytes))
        return super().__call__(output_tensor, input_tensor, group, op, async_op)


def count_collectives(model: nn.Module) -> CollectiveLog:
    """Give every FSDP unit of ``model`` counting collectives (``set_custom_all_gather``); return their shared log."""
    log = CollectiveLog()
    units = {name: model.get_submodule(name) for name in fsdp_units(model)}
    for name, unit in units.items():
        unit.set_custom_all_gather(CountingAllGather(name, units, log))
        unit.set_custom_reduce_scatter(CountingReduceScatter(name, log))
    return log


def peak_full_parameters(all_gathers: list[Collective]) -> tuple[tuple[str, ...], int]:
    """The units holding full parameters at once at the step's peak, and their bytes (each unit's all-gather output)."""
    if not all_gathers:
        raise ValueError("no all-gather was recorded")
    unit_bytes = {record.unit: record.nbytes for record in all_gathers}
    peak = max(all_gathers, key=lambda record: sum(unit_bytes[unit] for unit in record.resident))
    return peak.resident, sum(unit_bytes[unit] for unit in peak.resident)


@contextmanager
def forward_dtypes(layer: nn.Module) -> Iterator[dict[str, str]]:
    """Record the dtypes ``layer`` computes with: its (gathered) weight, its input and its output."""
    record: dict[str, str] = {}

    def note(_: nn.Module, args: tuple, output: torch.Tensor) -> None:  # after FSDP's pre-forward: weight gathered
        record.update({"gathered weight in forward": layer.weight.dtype, "activations (layer input)": args[0].dtype,
                       "layer output": output.dtype})

    handle = layer.register_forward_hook(note, prepend=True)  # before FSDP's post-forward reshards the weight
    try:
        yield record
    finally:
        handle.remove()
        record.update({key: dtype_name(dtype) for key, dtype in record.items()})


def state_dtypes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, str]:
    """The dtypes of the persistent training state: parameter shards, gradient shards, optimizer moments."""
    param = next(model.parameters())
    moment = optimizer.state[param]["exp_avg"]
    return {name: dtype_name(_local(t).dtype)
            for name, t in (("sharded parameters", param), ("gradients", param.grad), ("optimizer moments", moment))}


_FORWARD_OPS, _BACKWARD_OPS = ("aten::conv2d", "aten::linear"), ("ConvolutionBackward0", "AddmmBackward0")


def _timeline(events: list) -> list[StepEvent]:
    """The profiled step as bars: FSDP's all-gathers and reduce-scatters, and each layer's forward and backward ops."""
    events = sorted(events, key=lambda e: e.time_range.start)
    t0 = events[0].time_range.start if events else 0
    bars, unit, prefetch_end = [], "", -1.0
    for e in events:
        start, end, label = e.time_range.start, e.time_range.end, e.name.split(" ")[-1].strip("()")
        if e.name.startswith(("FSDP::pre_forward", "FSDP::pre_backward")):
            unit = label
        elif e.name.startswith("FSDP::backward_prefetch"):
            prefetch_end = end
        elif e.name.startswith("FSDP::all_gather ("):
            bars.append(("all-gather", f"{label} (prefetch)" if end <= prefetch_end else label, start, end))
        elif e.name.startswith("FSDP::post_backward_reduce"):
            bars.append(("reduce-scatter", label, start, end))
        elif e.name in _FORWARD_OPS or e.name in _BACKWARD_OPS:
            bars.append(("forward compute" if e.name in _FORWARD_OPS else "backward compute", unit, start, end))
    return [StepEvent(row, unit, (start - t0) / 1000, (end - t0) / 1000) for row, unit, start, end in bars]


def _trace(events: list) -> tuple[list[str], dict[str, int]]:
    """FSDP's labels and the collectives of a profiled step, in time order, and the collectives counted."""
    names = [e.name for e in sorted(events, key=lambda e: e.time_range.start) if e.name.startswith(_TRACE_PREFIXES)]
    counts = dict.fromkeys(("all_gather", "reduce_scatter", "all_reduce", "broadcast"), 0)
    for name in names:
        if name in _COLLECTIVES:
            counts[_COLLECTIVES[name]] += 1
    return names, counts


def training(spec: RunSpec, device: torch.device, data: tuple[torch.Tensor, ...],
             state_dict_path: Path) -> Generator[None, None, RankResult]:
    """Train one run on this rank, yielding after every step; return its result, save its full state dict."""
    rank, world_size = (0, 1) if spec.strategy == "single" else (dist.get_rank(), dist.get_world_size())
    spec.check_world_size(world_size)
    X_train, y_train, X_test, y_test = data
    model, plain = build_model(spec, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr)  # after sharding: it holds the shards
    loader = rank_batches(X_train.to(DTYPES[spec.dtype]), y_train, spec.global_batch_size, rank, world_size,
                          spec.seed)
    result = RankResult(spec.strategy, fsdp_units(plain), shard_facts(plain))
    log = count_collectives(plain) if spec.strategy == "fsdp" else CollectiveLog()
    losses, seconds, epoch_ends = [], [], []
    for epoch in range(spec.epochs):
        loader.sampler.set_epoch(epoch)
        for X, y in loader:
            log.recording = len(losses) == PROFILED_STEP  # the all-gathers and reduce-scatters of one step
            with ExitStack() as measuring:
                if not losses and spec.strategy == "fsdp":
                    gathered = measuring.enter_context(gathered_bytes(model))
                    dtypes = measuring.enter_context(forward_dtypes(plain.fc1))
                if len(losses) == PROFILED_STEP and spec.profile:
                    # The autograd profiler (without Kineto) starts in milliseconds and records FSDP's labels
                    profiler = measuring.enter_context(torch.autograd.profiler.profile())
                timer = measuring.enter_context(Timer(device))
                losses.append(train_step(model, optimizer, X.to(device), y.to(device)).detach())
            seconds.append(timer.seconds)
            if len(losses) == 1 and spec.strategy == "fsdp":
                result.gathered_after_forward = gathered.pop("")
                result.gathered_during_forward = gathered
            if len(losses) == PROFILED_STEP + 1 and spec.profile:
                result.trace, result.collectives = _trace(profiler.function_events)
                result.timeline = _timeline(profiler.function_events)
            if len(losses) == spec.max_steps:
                break
            yield  # another run may take a step now (run_in_turns)
        epoch_ends.append(len(losses))
        if len(losses) == spec.max_steps:
            break
    step_losses = torch.stack(losses).double()
    if world_size > 1:
        dist.all_reduce(step_losses)  # one collective for the whole run: the sum of the per-rank mean losses
        step_losses /= world_size
    result.losses = step_losses.tolist()
    result.epoch_losses = [sum(result.losses[start:end]) / (end - start)
                           for start, end in zip([0, *epoch_ends], epoch_ends, strict=False)]
    result.seconds_per_step = torch.tensor(seconds[1:] or seconds).median().item()
    result.fastest_step_seconds = min(seconds[1:] or seconds)
    result.memory = memory_bytes(model, optimizer)
    result.all_gathers, result.reduce_scatters, log.recording = log.all_gathers, log.reduce_scatters, False
    if spec.strategy == "fsdp":
        result.dtypes = {**state_dtypes(plain, optimizer), **dtypes}
    result.test_accuracy = evaluate(plain, X_test.to(DTYPES[spec.dtype]), y_test)[1]
    state = gather_full_state_dict(plain)  # a collective under FSDP: every rank takes part
    if dist.get_rank() == 0:
        state_dict_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, state_dict_path)
    return result


def run_in_turns(trainings: list[Generator[None, None, RankResult]]) -> list[RankResult]:
    """Advance the trainings one step each, in turns, until all have finished; return their results.

    Taking turns makes their step times comparable on a busy machine: load that comes and goes slows
    every run alike. Every rank takes the same turns, so the runs' collectives match on every rank.
    """
    results: list[RankResult | None] = [None] * len(trainings)
    while any(result is None for result in results):
        for i, steps in enumerate(trainings):
            if results[i] is None:
                try:
                    next(steps)
                except StopIteration as finished:
                    results[i] = finished.value
    return results


def run_rank(runs: list[RunSpec], out_dir: Path, collective_timeout_s: float,
             data: tuple[torch.Tensor, ...]) -> list[RankResult]:
    """What every rank executes under ``launch``: join the group, train the runs, leave the group.

    ``data`` is ``X_train, y_train, X_test, y_test``, handed over by ``launch``. Each run's full state dict
    is saved by rank 0 as ``out_dir/<run name>.pt``.
    """
    device = setup_process_group(collective_timeout_s)
    try:
        data = tuple(t.to(device) for t in data)
        return run_in_turns([training(spec, device, data, Path(out_dir) / f"{spec.name}.pt") for spec in runs])
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------
# 4. The launcher
# ----------------------------------------------------------------------------------------------

def exit_process(code: int) -> NoReturn:
    """Flush and end this process now, skipping interpreter shutdown (for a rank whose work is done).

    After training has finished and the process group is gone, a gloo thread can still race with the
    interpreter's shutdown and abort the process (SIGABRT, "terminate called without an active
    exception"), turning a finished run into a failed one; ``os._exit`` leaves no shutdown to race with.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def free_port() -> int:
    """A TCP port that was free a moment ago (the OS picks it when we bind to port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_run_dir(parent: Path | str, keep: int = 3) -> Path:
    """A new folder under ``parent`` for one launch's files; all but the newest ``keep`` earlier ones are removed.

    Launches going on at the same time (two notebooks, two test passes in parallel) must not share a
    folder: each would overwrite the other's results and state dicts.
    """
    check_int("keep", keep, min_value=1)
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for old in sorted(parent.glob("run-*"))[:-keep]:  # the names sort by creation time
        shutil.rmtree(old, ignore_errors=True)
    folder = parent / f"run-{datetime.now():%Y%m%d-%H%M%S-%f}-{os.getpid()}"
    folder.mkdir()
    return folder


Worker = Callable[[list[RunSpec], Path, float, tuple[torch.Tensor, ...]], list[RankResult]]


def launch(runs: list[RunSpec], world_size: int = 2, run_dir: Path | str | None = None,
           collective_timeout_s: float = 60.0, port: int | None = None,
           worker: Worker = run_rank) -> dict[str, list[RankResult]]:
    """Run every spec on ``world_size`` new processes; return ``{run name: [result of rank 0, 1, ...]}``.

    ``torch.multiprocessing.start_processes`` starts the ranks once for all the runs (``spawn``: the
    worker must live in an importable module, not in a notebook). The digits are loaded here and handed
    to the ranks, which so import neither scikit-learn nor anything else they do not use. When a rank
    fails, torch stops the others and raises its traceback here (``ProcessRaisedException``); a rank
    stuck in a collective fails after ``collective_timeout_s``. Each rank writes its output to
    ``run_dir/rank<r>.log``, never to the caller's terminal or notebook; full state dicts go to
    ``run_dir/<name>.pt`` (default: a new folder under ``outputs/05_fsdp``). ``worker`` is what each
    rank runs (tests pass one that misbehaves).
    """
    check_int("world_size", world_size, min_value=1)
    check_float("collective_timeout_s", collective_timeout_s, min_value=0.0, min_inclusive=False)
    names = [spec.name for spec in runs]
    if not runs or len(set(names)) != len(names):
        raise ValueError(f"runs must be a non-empty list with distinct names, got {names}")
    for spec in runs:
        spec.check_world_size(world_size)
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(output_dir("05_fsdp"))
    data = digits_split().tensors()
    args = (world_size, port or free_port(), runs, run_dir, collective_timeout_s, worker, data)
    ranks = mp.start_processes(_rank_main, args=args, nprocs=world_size, join=False, start_method="spawn")
    while not ranks.join():  # returns True once all ranks exited with 0; raises on the first failure
        pass
    results = [pickle.loads((run_dir / f"rank{rank}.pkl").read_bytes()) for rank in range(world_size)]
    return {name: [results[rank][i] for rank in range(world_size)] for i, name in enumerate(names)}


def _rank_main(rank: int, world_size: int, port: int, runs: list[RunSpec], run_dir: Path,
               collective_timeout_s: float, worker: Worker, data: tuple[torch.Tensor, ...]) -> None:
    """A process ``launch`` started: torchrun's environment, one thread, output to a file, results to a file."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # the ranks share the cores
    with open(run_dir / f"rank{rank}.log", "w") as log:  # not the notebook: prints of N ranks interleave
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    results = worker(runs, run_dir, collective_timeout_s, data)
    (run_dir / f"rank{rank}.pkl").write_bytes(pickle.dumps(results))
    exit_process(0)


# ----------------------------------------------------------------------------------------------
# 5. The script's building blocks: a model built on the meta device, rank 0's weights, DCP checkpoints
# ----------------------------------------------------------------------------------------------

def shard_meta_model(model: nn.Module, device: torch.device) -> nn.Module:
    """FSDP2 on a model built on the meta device: ``fully_shard`` per block then the root, then this rank's shards.

    A model built under ``torch.device("meta")`` has shapes but no memory, so no rank's device ever holds all
    of it (the full weights come from rank 0's CPU copy, ``load_full_state_dict``). ``shard_model`` reads its
    mesh's device from the parameters, which on the meta device are nowhere: here it comes from ``device``.
    ``to_empty`` then allocates this rank's shards on ``device``, uninitialised: load weights next
    (``load_full_state_dict``).
    """
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for block in model.children():
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model.to_empty(device=device)


def load_full_state_dict(model: nn.Module, full_state: dict[str, torch.Tensor]) -> None:
    """Copy rank 0's full weights into every rank's shards; ranks other than 0 pass ``{}``. Every rank must call it.

    FSDP2, unlike DDP, never broadcasts weights itself: ranks that started from different weights would
    train a model stitched from unrelated shards, silently. ``broadcast_from_rank0`` sends each tensor
    from rank 0, and each rank keeps its own rows.
    """
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full_state, options=options)


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
