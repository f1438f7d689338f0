"""Notebook 05's measuring runs: what each rank trains, what it measures, and the results it returns.

Tooling, not taught: the lesson's code is ``course_lib.fsdp``; this module wraps it in probes. ``run_rank``
is what every rank of ``course_lib.tools.launch.launch`` executes: it trains each ``RunSpec`` (strategy
``"single"``, ``"ddp"`` or ``"fsdp"`` with FSDP's options) and returns one ``RankResult`` per run. The runs
take turns one step each (``run_in_turns``), so that load on the machine slows them alike.

The probes, each seeing what the others cannot:
- the torch profiler over one steady-state step (``PROFILED_STEP``): FSDP2's own labels in order, the step
  as a timeline, and the allocator's bytes over time (``course_lib.memory.allocation_timeline``);
- counting collectives (``set_custom_all_gather`` / ``set_custom_reduce_scatter``, public FSDP2 APIs) that
  record each call's unit, dtype and bytes. They subclass FSDP2's private ``DefaultAllGather`` and
  ``DefaultReduceScatter``: the public API takes a replacement collective, and these are the defaults;
- forward hooks for the dtypes a layer computes with.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard
from torch.distributed.fsdp._fully_shard._fsdp_collectives import DefaultAllGather, DefaultReduceScatter
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel
from torch.profiler import ProfilerActivity, profile

from course_lib.data import rank_batches
from course_lib.env import check_bool, check_choice, check_float, check_int
from course_lib.fsdp import (
    fsdp_units,
    gather_full_state_dict,
    load_full_state_dict,
    ranks_disagree,
    save_checkpoint,
    setup_process_group,
)
from course_lib.memory import allocation_timeline, local, storage_bytes, training_state_parts
from course_lib.models import SimpleCNN
from course_lib.report import dtype_name
from course_lib.timing import Timer, median
from course_lib.training import evaluate, train_step

STRATEGIES = ("single", "ddp", "fsdp")
INITS = ("seeded", "meta", "unseeded")
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
    reshard_after_forward: bool | None = None  # torch's default None: True for every unit but the root
    no_reshard: tuple[str, ...] = ()  # units given reshard_after_forward=False (kept gathered until backward)
    prefetch: bool = False  # explicit prefetch: each unit all-gathers the next one (forward) / previous (backward)
    mixed_precision: bool = False  # bfloat16 gathered parameters and compute, float32 gradient reduction
    cpu_offload: bool = False  # keep shards and optimizer state in CPU memory (pin_memory=False)
    init: str = "seeded"  # every rank builds the seeded model; "meta": rank 0's weights broadcast; "unseeded": a bug
    checkpoint: bool = False  # save a DCP checkpoint (model, optimizer, epoch) after each epoch: <out>/<name>-dcp
    profile: bool = False  # profile one steady-state step: FSDP's labels, the timeline, bytes over time

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
        if self.reshard_after_forward is not None:
            check_bool("reshard_after_forward", self.reshard_after_forward)
        for flag in ("prefetch", "mixed_precision", "cpu_offload", "checkpoint", "profile"):
            check_bool(flag, getattr(self, flag))
        check_choice("init", self.init, INITS)
        layers = [name for name, _ in SimpleCNN(channels=self.channels, hidden=self.hidden).named_children()]
        for unit in self.no_reshard:
            check_choice("no_reshard unit", unit, layers)
        fsdp_only = (self.reshard_after_forward is not None or self.no_reshard or self.prefetch or self.mixed_precision
                     or self.cpu_offload or self.init != "seeded" or self.checkpoint)
        if self.strategy != "fsdp" and fsdp_only:
            raise ValueError(f"reshard_after_forward, no_reshard, prefetch, mixed_precision, cpu_offload, init and "
                             f"checkpoint are FSDP options; run {self.name!r} has strategy {self.strategy!r}")

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


class Collective(NamedTuple):
    """One all-gather or reduce-scatter FSDP issued: its unit, dtype, bytes, and who held full parameters then."""

    unit: str
    dtype: str
    nbytes: int  # all-gather: its output (the unit's full parameters); reduce-scatter: its input (full gradients)


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
    held_bytes: int = 0  # allocated before the profiled step and kept through it: parameters, optimizer state, batch
    bytes_over_step: list[tuple[float, int]] = field(default_factory=list)  # (ms, bytes the step allocated, alive)
    forward_gather_bytes: dict[str, int] = field(default_factory=dict)  # FSDP: bytes each forward all-gather added
    ddp_bucket_bytes: int = 0  # DDP: bytes its constructor allocated (the gradient buckets)
    cuda_peak_bytes: int | None = None  # on a GPU: torch.cuda.max_memory_allocated over the profiled step
    disagreeing: list[str] = field(default_factory=list)  # parameters whose initial values differed between ranks
    collectives: dict[str, int] = field(default_factory=dict)  # in the profiled step
    trace: list[str] = field(default_factory=list)  # FSDP's labels and collectives of the profiled step, in order
    trace_ms: list[float] = field(default_factory=list)  # when each of them started
    timeline: list[StepEvent] = field(default_factory=list)  # the profiled step as bars, in time order
    all_gathers: list[Collective] = field(default_factory=list)  # FSDP runs: each all-gather of step PROFILED_STEP
    reduce_scatters: list[Collective] = field(default_factory=list)  # and each reduce-scatter of that step
    dtypes: dict[str, str] = field(default_factory=dict)  # FSDP runs: the dtype of each kind of tensor


def build_model(spec: RunSpec, device: torch.device) -> tuple[nn.Module, nn.Module, RankResult]:
    """Return ``(model to train, plain module inside it, the run's result to fill in)`` on ``device``."""
    torch.manual_seed(spec.seed + (dist.get_rank() if spec.init == "unseeded" else 0))  # unseeded: a rank's own
    with torch.device("meta" if spec.init == "meta" else device):
        plain = SimpleCNN(channels=spec.channels, hidden=spec.hidden).to(DTYPES[spec.dtype])
    disagreeing = ranks_disagree(plain) if spec.strategy == "fsdp" and spec.init != "meta" else []
    ddp_bucket_bytes = 0
    if spec.strategy == "ddp":
        device_ids = [device.index] if device.type == "cuda" else None
        # Measured: what the constructor allocates and keeps, its gradient buckets. Not its broadcast of rank 0's
        # weights (init_sync), whose buffers gloo may free on its own thread, unseen: the ranks built the same ones.
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as constructor:
            model = DistributedDataParallel(plain, device_ids=device_ids, init_sync=False)
        ddp_bucket_bytes = next((alive for _, alive in reversed(allocation_timeline(constructor, device))), 0)
    elif spec.strategy == "fsdp":
        _shard(plain, spec, device)
        model = plain
        if spec.init == "meta":  # allocate this rank's shards, then fill them with rank 0's seeded weights
            plain.to_empty(device=device)
            torch.manual_seed(spec.seed)
            full = SimpleCNN(channels=spec.channels, hidden=spec.hidden).to(DTYPES[spec.dtype]).state_dict()
            load_full_state_dict(plain, full if dist.get_rank() == 0 else {})
    else:
        model = plain
    result = RankResult(spec.strategy, fsdp_units(plain), shard_facts(plain), ddp_bucket_bytes=ddp_bucket_bytes,
                        disagreeing=disagreeing)
    return model, plain, result


def _shard(model: nn.Module, spec: RunSpec, device: torch.device) -> None:
    """``fully_shard`` per block then the root, with the run's options (``course_lib.fsdp.shard_model`` plus knobs)."""
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    mixed = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=torch.float32)
    options = dict(mesh=mesh, mp_policy=mixed if spec.mixed_precision else MixedPrecisionPolicy(),
                   offload_policy=CPUOffloadPolicy(pin_memory=False) if spec.cpu_offload else OffloadPolicy())
    units = []
    for name, block in model.named_children():
        reshard = False if name in spec.no_reshard else spec.reshard_after_forward
        units.append(fully_shard(block, reshard_after_forward=reshard, **options))
    fully_shard(model, reshard_after_forward=spec.reshard_after_forward, **options)
    if spec.prefetch:  # public FSDP2 APIs: which units a unit all-gathers ahead, besides FSDP's own order
        for before, after in zip(units, units[1:], strict=False):
            before.set_modules_to_forward_prefetch([after])
            after.set_modules_to_backward_prefetch([before])


def shard_facts(model: nn.Module) -> list[ParamShard]:
    """Every parameter's global and local shape, placements and dtype on this rank."""
    return [ParamShard(name, tuple(p.shape), tuple(local(p).shape),
                       tuple(str(pl) for pl in p.placements) if isinstance(p, DTensor) else ("Replicate (plain)",),
                       dtype_name(p.dtype)) for name, p in model.named_parameters()]


@dataclass
class CollectiveLog:
    """What the counting collectives record while ``recording`` is on."""

    recording: bool = False
    all_gathers: list[Collective] = field(default_factory=list)
    reduce_scatters: list[Collective] = field(default_factory=list)


def _settled(work: dist.Work, async_op: bool) -> dist.Work | None:
    """Wait for a collective, then give the backend's thread a moment to drop its references to the tensors.

    In the profiled step only. gloo runs a collective on its own thread, which holds the tensors until it
    lets go of the work, just after completing it. Freed there, a buffer's free would be invisible to the
    profiler (it records this thread's allocations and frees): the buffer would count as alive forever.
    """
    work.wait()
    time.sleep(0.002)
    return work if async_op else None


class CountingAllGather(DefaultAllGather):
    """FSDP2's default all-gather, recording each call's unit, dtype, bytes and the units holding full parameters."""

    def __init__(self, unit: str, log: CollectiveLog) -> None:
        self.unit, self.log = unit, log

    def __call__(self, output_tensor: torch.Tensor, input_tensor: torch.Tensor, group: dist.ProcessGroup,
                 async_op: bool = False) -> dist.Work | None:
        if not self.log.recording:
            return super().__call__(output_tensor, input_tensor, group, async_op)
        self.log.all_gathers.append(Collective(self.unit, dtype_name(output_tensor.dtype), output_tensor.nbytes))
        return _settled(super().__call__(output_tensor, input_tensor, group, True), async_op)


class CountingReduceScatter(DefaultReduceScatter):
    """FSDP2's default reduce-scatter, recording each call's unit, dtype and input bytes."""

    def __init__(self, unit: str, log: CollectiveLog) -> None:
        self.unit, self.log = unit, log

    def __call__(self, output_tensor: torch.Tensor, input_tensor: torch.Tensor, group: dist.ProcessGroup,
                 op: object, async_op: bool = False) -> dist.Work | None:
        if not self.log.recording:
            return super().__call__(output_tensor, input_tensor, group, op, async_op)
        self.log.reduce_scatters.append(Collective(self.unit, dtype_name(input_tensor.dtype), input_tensor.nbytes))
        return _settled(super().__call__(output_tensor, input_tensor, group, op, True), async_op)


def count_collectives(model: nn.Module) -> CollectiveLog:
    """Give every FSDP unit of ``model`` counting collectives (``set_custom_all_gather``); return their shared log."""
    log = CollectiveLog()
    for name in fsdp_units(model):
        unit = model.get_submodule(name)
        unit.set_custom_all_gather(CountingAllGather(name, log))
        unit.set_custom_reduce_scatter(CountingReduceScatter(name, log))
    return log


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
    return {name: dtype_name(local(t).dtype)
            for name, t in (("sharded parameters", param), ("gradients", param.grad), ("optimizer moments", moment))}


_FORWARD_OPS, _BACKWARD_OPS = ("aten::conv2d", "aten::linear"), ("ConvolutionBackward0", "AddmmBackward0")


def _timeline(events: list) -> list[StepEvent]:
    """The profiled step as bars: FSDP's all-gathers and reduce-scatters, and each layer's forward and backward ops."""
    bars, unit, prefetch_end = [], "", -1.0
    for e in sorted(events, key=lambda e: e.time_range.start):
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
    return [StepEvent(row, unit, start / 1000, end / 1000) for row, unit, start, end in bars]  # ms from the start


def _trace(events: list) -> tuple[list[str], list[float], dict[str, int]]:
    """FSDP's labels and the collectives of a profiled step in time order, when each started (ms), and the counts."""
    chosen = [e for e in sorted(events, key=lambda e: e.time_range.start) if e.name.startswith(_TRACE_PREFIXES)]
    counts = dict.fromkeys(("all_gather", "reduce_scatter", "all_reduce", "broadcast"), 0)
    for e in chosen:
        if e.name in _COLLECTIVES:
            counts[_COLLECTIVES[e.name]] += 1
    return [e.name for e in chosen], [e.time_range.start / 1000 for e in chosen], counts


def _forward_gather_bytes(events: list, bytes_over_step: list[tuple[float, int]]) -> dict[str, int]:
    """Bytes each unit's forward all-gather added, from its start to the end of its copy-out into the parameters."""
    def alive_at(ms: float) -> int:
        return next((nbytes for t, nbytes in reversed(bytes_over_step) if t <= ms), 0)

    events = sorted(events, key=lambda e: e.time_range.start)
    backward = next((e.time_range.start for e in events if e.name.startswith("FSDP::pre_backward")), float("inf"))
    added = {}
    for i, e in enumerate(events):
        if e.name.startswith("FSDP::all_gather (") and e.time_range.start < backward:
            unit = e.name.split("(")[1].rstrip(")")
            copy_out = next(c for c in events[i:] if c.name == f"FSDP::all_gather_copy_out ({unit})")
            added[unit] = alive_at(copy_out.time_range.end / 1000) - alive_at(e.time_range.start / 1000)
    return added


def training(spec: RunSpec, device: torch.device, data: tuple[torch.Tensor, ...],
             out_dir: Path) -> Generator[None, None, RankResult]:
    """Train one run on this rank, yielding after every step; return its result.

    Rank 0 saves the run's full state dict as ``out_dir/<name>.pt``; with ``spec.checkpoint`` every rank writes
    its part of a DCP checkpoint after each epoch, in ``out_dir/<name>-dcp/epoch-<N>``.
    """
    rank, world_size = (0, 1) if spec.strategy == "single" else (dist.get_rank(), dist.get_world_size())
    spec.check_world_size(world_size)
    X_train, y_train, X_test, y_test = data
    model, plain, result = build_model(spec, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr)  # after sharding: it holds the shards
    loader = rank_batches(X_train.to(DTYPES[spec.dtype]), y_train, spec.global_batch_size, rank, world_size,
                          spec.seed)
    log = count_collectives(plain) if spec.strategy == "fsdp" else CollectiveLog()
    losses, seconds, epoch_ends = [], [], []
    for epoch in range(spec.epochs):
        loader.sampler.set_epoch(epoch)
        for X, y in loader:
            X, y = X.to(device), y.to(device)
            log.recording = len(losses) == PROFILED_STEP  # the all-gathers and reduce-scatters of one step
            with ExitStack() as measuring:
                if not losses and spec.strategy == "fsdp":
                    dtypes = measuring.enter_context(forward_dtypes(plain.fc1))
                if len(losses) == PROFILED_STEP and spec.profile:
                    profiler = measuring.enter_context(_profile_step(model, optimizer, X, y, device, result))
                timer = measuring.enter_context(Timer(device))
                losses.append(train_step(model, optimizer, F.cross_entropy, X, y).detach())
            seconds.append(timer.seconds)
            if len(losses) == PROFILED_STEP + 1 and spec.profile:
                _read_profile(profiler, device, result)
            if len(losses) == spec.max_steps:
                break
            yield  # another run may take a step now (run_in_turns)
        epoch_ends.append(len(losses))
        if spec.checkpoint:
            save_checkpoint(out_dir / f"{spec.name}-dcp", model, optimizer, epoch + 1)  # a collective
        if len(losses) == spec.max_steps:
            break
    step_losses = torch.stack(losses).double()
    if world_size > 1:
        dist.all_reduce(step_losses)  # one collective for the whole run: the sum of the per-rank mean losses
        step_losses /= world_size
    result.losses = step_losses.tolist()
    result.epoch_losses = [sum(result.losses[start:end]) / (end - start)
                           for start, end in zip([0, *epoch_ends], epoch_ends, strict=False)]
    result.seconds_per_step = median(seconds[1:] or seconds)
    result.fastest_step_seconds = min(seconds[1:] or seconds)
    result.memory = training_state_parts(model, optimizer)
    result.all_gathers, result.reduce_scatters, log.recording = log.all_gathers, log.reduce_scatters, False
    if spec.strategy == "fsdp":
        result.dtypes = {**state_dtypes(plain, optimizer), **dtypes}
    result.test_accuracy = evaluate(plain, X_test.to(DTYPES[spec.dtype]), y_test)[1]
    state = gather_full_state_dict(plain)  # a collective under FSDP: every rank takes part
    if dist.get_rank() == 0:
        torch.save(state, out_dir / f"{spec.name}.pt")
    return result


@contextmanager
def _profile_step(model: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor, y: torch.Tensor,
                  device: torch.device, result: RankResult) -> Iterator[profile]:
    """Profile one step (labels, times, allocations), noting first the bytes held from before it."""
    optimizer.zero_grad()  # last step's gradients go now, not inside the profile (whose frees it could not size)
    held = training_state_parts(model, optimizer)
    result.held_bytes = (held["params_allocated"] + held["optimizer_allocated"] + result.ddp_bucket_bytes
                         + storage_bytes([X, y]))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with profile(activities=activities, profile_memory=True) as profiler:
        yield profiler


def _read_profile(profiler: profile, device: torch.device, result: RankResult) -> None:
    """Fill in what the profiled step showed: FSDP's labels in order, the timeline, the bytes over time."""
    events = profiler.events()
    result.trace, result.trace_ms, result.collectives = _trace(events)
    result.timeline = _timeline(events)
    result.bytes_over_step = allocation_timeline(profiler, device)
    if result.strategy == "fsdp":
        result.forward_gather_bytes = _forward_gather_bytes(events, result.bytes_over_step)
    if device.type == "cuda":
        result.cuda_peak_bytes = torch.cuda.max_memory_allocated(device)


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
        return run_in_turns([training(spec, device, data, Path(out_dir)) for spec in runs])
    finally:
        dist.destroy_process_group()
