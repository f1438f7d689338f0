"""Data-parallel training of ``SimpleCNN`` on the digits with one process per rank, and its launcher.

``train_run`` is what every rank executes: it trains with a strategy of ``"single"`` (no
communication: each rank trains the whole model on the whole global batch), ``"ddp"`` or ``"fsdp"``
(FSDP2's ``fully_shard``), and returns facts a notebook can print: losses, accuracy, the local
shape and placement of each parameter, bytes of parameters, gradients and optimizer state, the
collectives of one profiled step, and where the full state dict was saved.

``launch`` starts ``world_size`` worker processes (``python -m course_lib.distributed``) from a
notebook, a test or a script: a free port, gloo on CPU (NCCL when there is one GPU per rank), a
timeout on every collective and on the whole job, the failing rank's traceback when one fails,
and no process left behind. Each worker trains all its runs in turns, one step each
(``run_in_turns``), so that their step times are comparable; workers write their reports and
output to files, never to the caller's terminal or notebook.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from course_lib.env import check_bool, check_choice, check_float, check_int, display_path, output_dir
from course_lib.memory import count_parameters, storage_bytes, tensor_bytes
from course_lib.models import SimpleCNN
from course_lib.training import evaluate

STRATEGIES = ("single", "ddp", "fsdp")
PROFILED_STEP = 2  # not 0 (FSDP's lazy init) nor 1 (DDP rebuilds its gradient buckets once, with 2 broadcasts)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
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
    mixed_precision: bool = False  # bfloat16 parameters and compute, float32 gradient reduction
    cpu_offload: bool = False  # keep shards and optimizer state in CPU memory (pin_memory=False)
    profile: bool = False  # record the third training step (steady state) with torch.profiler
    save_state_dict: bool = True  # rank 0 saves the full (unsharded) state dict
    fault_rank: int | None = None  # test hook: this rank misbehaves after its first step ...
    fault: str = "raise"  # ... by raising an exception, or by hanging ("hang")

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
        check_choice("fault", self.fault, ("raise", "hang"))
        for flag in ("reshard_after_forward", "mixed_precision", "cpu_offload", "profile", "save_state_dict"):
            check_bool(flag, getattr(self, flag))
        if self.strategy != "fsdp" and (self.mixed_precision or self.cpu_offload or not self.reshard_after_forward):
            raise ValueError(f"mixed_precision, cpu_offload and reshard_after_forward=False are FSDP options; "
                             f"run {self.name!r} has strategy {self.strategy!r}")

    def check_world_size(self, world_size: int) -> None:
        """Refuse a global batch that does not split evenly across ``world_size`` ranks."""
        if self.global_batch_size % world_size:
            raise ValueError(f"global_batch_size must be divisible by world_size ({world_size}), "
                             f"got {self.global_batch_size} in run {self.name!r}")


@dataclass
class Context:
    """Where this rank runs: its rank, the world size, the backend and the device."""

    rank: int
    world_size: int
    backend: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


# ----------------------------------------------------------------------------------------------
# Process group set-up and the clean exit
# ----------------------------------------------------------------------------------------------

def choose_backend(world_size: int) -> tuple[str, str]:
    """``("nccl", "cuda")`` when there is one GPU per rank, else ``("gloo", "cpu")``."""
    if torch.cuda.is_available() and torch.cuda.device_count() >= world_size:
        return "nccl", "cuda"
    return "gloo", "cpu"


def init_process_group(rank: int, world_size: int, init_method: str = "env://",
                       timeout_s: float = 60.0) -> Context:
    """Join the process group; every collective then fails after ``timeout_s`` instead of 30 minutes."""
    backend, device_type = choose_backend(world_size)
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=timeout_s))
    return Context(rank, world_size, backend, device)


def free_port() -> int:
    """A TCP port that was free a moment ago (the OS picks it when we bind to port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exit_process(code: int) -> None:
    """Flush, leave the process group and end the process now, skipping interpreter shutdown.

    Why ``os._exit``: when this course was planned, 5-13% of 2-rank runs on its CPU machine (DDP and
    FSDP alike) aborted with SIGABRT ("terminate called without an active exception") *after*
    training had finished: a gloo thread released a tensor while the interpreter was tearing down
    (an upstream race). Flushing our output, destroying the process group and then ``os._exit``
    leaves no interpreter shutdown for that thread to race with. The stress test in
    tests/test_distributed.py (``pytest --run-slow``) starts the 2-rank job 30 times and expects 0
    failures.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if code == 0 and dist.is_initialized():
        dist.destroy_process_group()  # after a failure a peer may be gone: do not wait for it
    os._exit(code)


# ----------------------------------------------------------------------------------------------
# What every rank executes
# ----------------------------------------------------------------------------------------------

def build_model(spec: RunSpec, ctx: Context) -> tuple[nn.Module, nn.Module]:
    """Return ``(model to train, plain module inside it)`` for the run's strategy, on the rank's device."""
    torch.manual_seed(spec.seed)  # the same initial weights on every rank and in every strategy
    plain = SimpleCNN(channels=spec.channels, hidden=spec.hidden).to(ctx.device, DTYPES[spec.dtype])
    if spec.strategy == "single":
        return plain, plain
    if spec.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        return DistributedDataParallel(plain, device_ids=device_ids, gradient_as_bucket_view=True), plain
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    mixed = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=torch.float32)
    options = dict(mesh=init_device_mesh(ctx.device.type, (ctx.world_size,)),
                   reshard_after_forward=spec.reshard_after_forward,
                   mp_policy=mixed if spec.mixed_precision else MixedPrecisionPolicy(),
                   offload_policy=CPUOffloadPolicy(pin_memory=False) if spec.cpu_offload else OffloadPolicy())
    for layer in plain.children():  # one FSDP unit per layer (what FSDP1's auto-wrap policy did), then the root
        fully_shard(layer, **options)
    fully_shard(plain, **options)
    return plain, plain


def global_batches(n_samples: int, global_batch_size: int, seed: int, epoch: int) -> list[torch.Tensor]:
    """Index tensors of one epoch's global batches: a seeded shuffle, incomplete last batch dropped."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n_samples, generator=generator)
    n_batches = n_samples // global_batch_size
    if n_batches == 0:
        raise ValueError(f"global_batch_size must be <= the {n_samples} training samples, got {global_batch_size}")
    return list(order[: n_batches * global_batch_size].split(global_batch_size))


def rank_slice(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's equal, contiguous part of a global batch."""
    if len(batch) % world_size:
        raise ValueError(f"a global batch of {len(batch)} does not split evenly across {world_size} ranks")
    size = len(batch) // world_size
    return batch[rank * size:(rank + 1) * size]


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t  # a DTensor's shard on this rank


def memory_report(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes this rank holds for parameters, gradients and optimizer moments (the 'step' counters excluded).

    ``<part>`` counts the elements of the local tensors; ``<part>_allocated`` the distinct storages
    behind them, which include FSDP's padding.
    """
    params = list(model.parameters())
    grads = [p.grad for p in params if p.grad is not None]
    moments = [v for state in optimizer.state.values() for k, v in state.items() if k != "step"]
    report = {}
    for part, tensors in (("params", params), ("grads", grads), ("optimizer", moments)):
        local = [_local(t) for t in tensors]
        report[part], report[f"{part}_allocated"] = tensor_bytes(local), storage_bytes(local)
    return report


def gathered_param_bytes(model: nn.Module) -> int:
    """Bytes of parameters currently all-gathered (FSDP swaps a layer's DTensor shards for full tensors)."""
    return tensor_bytes(p for p in model.parameters() if not hasattr(p, "to_local"))


def shard_facts(model: nn.Module) -> list[dict[str, Any]]:
    """Name, global and local shape, placements and dtype of every parameter on this rank."""
    facts = []
    for name, p in model.named_parameters():
        facts.append({"name": name, "global_shape": list(p.shape), "local_shape": list(_local(p).shape),
                      "placements": [str(pl) for pl in getattr(p, "placements", [])] or ["Replicate (plain tensor)"],
                      "dtype": str(p.dtype).replace("torch.", "")})
    return facts


def _trace(events: list) -> tuple[list[str], dict[str, int]]:
    """FSDP's labels and the collectives of a profiled step, in time order, and the collectives counted."""
    events = sorted(events, key=lambda e: e.time_range.start)
    names = [e.name for e in events if e.name.startswith(_TRACE_PREFIXES)]
    counts = {kind: 0 for kind in ("all_gather", "reduce_scatter", "all_reduce", "broadcast")}
    for name in names:
        if name in _COLLECTIVES:
            counts[_COLLECTIVES[name]] += 1
    return names, counts


_WRAPPING = {"single": "no wrapping, one full copy trained on the whole batch",
             "ddp": "a full replica per rank, gradients all-reduced",
             "fsdp": "fully_shard on {layers} and the root (each rank holds 1/{world_size})"}


def train_run(spec: RunSpec, ctx: Context, data: tuple[torch.Tensor, ...], state_dict_path: Path | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train one run on this rank and return its report (see the module docstring); ``log`` gets progress lines."""
    return run_in_turns([training(spec, ctx, data, state_dict_path, log)])[0]


def run_in_turns(trainings: list[Generator[None, None, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Advance the trainings one step each, in turns, until all have finished; return their reports.

    Taking turns makes their step times comparable on a busy machine: load that comes and goes (another
    program, another notebook) slows every run alike, not just the run that happened to be training.
    Every rank takes the same turns, so the collectives of all runs come in the same order on every rank.
    """
    reports: list[dict[str, Any] | None] = [None] * len(trainings)
    while any(report is None for report in reports):
        for i, steps in enumerate(trainings):
            if reports[i] is None:
                try:
                    next(steps)
                except StopIteration as finished:
                    reports[i] = finished.value
    return reports


def training(spec: RunSpec, ctx: Context, data: tuple[torch.Tensor, ...], state_dict_path: Path | None = None,
             log: Callable[[str], None] | None = None) -> Generator[None, None, dict[str, Any]]:
    """``train_run`` one optimizer step at a time: yields after every step, returns the report at the end."""
    spec.check_world_size(ctx.world_size)
    say = log or (lambda _: None)
    X_train, y_train, X_test, y_test = (t.to(ctx.device) for t in data)
    X_train, X_test = X_train.to(DTYPES[spec.dtype]), X_test.to(DTYPES[spec.dtype])
    rank, world_size = (0, 1) if spec.strategy == "single" else (ctx.rank, ctx.world_size)
    started = time.perf_counter()
    model, plain = build_model(spec, ctx)
    n_params = count_parameters(model)  # a DTensor's numel is the global one
    say(f"Creating model: SimpleCNN with {n_params:,} parameters")
    layers = ", ".join(name for name, _ in plain.named_children())
    say(f"Wrapping model with {spec.strategy.upper()}: "
        + _WRAPPING[spec.strategy].format(layers=layers, world_size=ctx.world_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr)
    report: dict[str, Any] = {"name": spec.name, "strategy": spec.strategy, "rank": ctx.rank,
                              "world_size": ctx.world_size, "backend": ctx.backend, "device": str(ctx.device),
                              "n_params": n_params, "shards": shard_facts(plain), "losses": [], "epochs": []}
    step, step_seconds = 0, []
    say("Training...")
    for epoch in range(spec.epochs):
        model.train()
        losses, correct = [], torch.zeros((), device=ctx.device)
        for batch in global_batches(len(X_train), spec.global_batch_size, spec.seed, epoch):
            idx = rank_slice(batch, rank, world_size).to(ctx.device)
            start = time.perf_counter()
            logits, loss = _instrumented_step(spec, step, model, optimizer, X_train[idx], y_train[idx], report)
            step_seconds.append(time.perf_counter() - start)
            losses.append(loss.detach())
            correct += (logits.argmax(dim=1) == y_train[idx]).sum()
            step += 1
            if step == 1 and spec.fault_rank == ctx.rank:
                _misbehave(spec.fault, ctx.rank)
            if spec.max_steps is not None and step >= spec.max_steps:
                break
            yield  # another run may take a step now (run_in_turns)
        step_losses, accuracy = _epoch_stats(losses, correct, world_size, spec.global_batch_size)
        report["losses"] += step_losses
        report["epochs"].append({"loss": sum(step_losses) / len(step_losses), "train_accuracy": accuracy})
        say(f"Epoch {epoch + 1}/{spec.epochs}, Loss: {report['epochs'][-1]['loss']:.4f}, "
            f"Accuracy: {100 * accuracy:.2f}%")
        if spec.max_steps is not None and step >= spec.max_steps:
            break
    report["seconds_per_step"] = statistics.median(step_seconds[1:] or step_seconds)  # first step: warm-up
    report["memory"] = memory_report(model, optimizer)
    say("Evaluating...")
    report["test_accuracy"] = evaluate(plain, X_test, y_test)[1]
    report["state_dict"] = _save_full_state_dict(spec, plain, ctx, state_dict_path) if spec.save_state_dict else None
    report["seconds"] = time.perf_counter() - started
    return report


def _epoch_stats(losses: list[torch.Tensor], correct: torch.Tensor, world_size: int,
                 global_batch_size: int) -> tuple[list[float], float]:
    """Per-step losses averaged over the ranks and the epoch's training accuracy: one all-reduce per epoch."""
    stats = torch.cat([torch.stack(losses).double(), correct.double().view(1)])
    if world_size > 1:
        dist.all_reduce(stats)  # sums: the per-rank mean losses and the correct counts
        stats[:-1] /= world_size
    return stats[:-1].tolist(), stats[-1].item() / (len(losses) * global_batch_size)


def _instrumented_step(spec: RunSpec, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                       X: torch.Tensor, y: torch.Tensor, report: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``_step``; FSDP's first step also records gathered bytes, step ``PROFILED_STEP`` its collectives."""
    if step == 0 and spec.strategy == "fsdp":
        report["gathered_during_forward"], report["gathered_after_forward"], logits, loss = \
            _measured_fsdp_step(model, optimizer, X, y)
        return logits, loss
    if step == PROFILED_STEP and spec.profile:
        # The autograd profiler (without Kineto) starts in milliseconds; torch.profiler's first start
        # probes for GPUs for seconds. Both record FSDP's labels and the c10d collectives.
        with torch.autograd.profiler.profile() as prof:
            logits, loss = _step(model, optimizer, X, y)
        report["trace"], report["collectives_per_step"] = _trace(prof.function_events)
        return logits, loss
    return _step(model, optimizer, X, y)


def _misbehave(fault: str, rank: int) -> None:
    """The test hook: raise, or hang so that the other ranks' next collective times out."""
    if fault == "raise":
        raise RuntimeError(f"rank {rank}: deliberate failure after the first step (fault_rank)")
    while True:
        time.sleep(1)


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor,
          y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on this rank's part of the batch; DDP/FSDP average gradients across ranks."""
    optimizer.zero_grad()
    logits = model(X)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    optimizer.step()
    return logits, loss


def _measured_fsdp_step(model: nn.Module, optimizer: torch.optim.Optimizer, X: torch.Tensor,
                        y: torch.Tensor) -> tuple[dict[str, int], int, torch.Tensor, torch.Tensor]:
    """``_step`` that also records the bytes of gathered parameters while each layer runs forward, and after."""
    during: dict[str, int] = {}
    handles = [layer.register_forward_hook(  # prepend: runs before FSDP's own hook reshards the layer
        lambda _m, _i, _o, name=name: during.__setitem__(name, gathered_param_bytes(model)), prepend=True)
        for name, layer in model.named_children()]
    optimizer.zero_grad()
    logits = model(X)
    after = gathered_param_bytes(model)
    for handle in handles:
        handle.remove()
    loss = F.cross_entropy(logits, y)
    loss.backward()
    optimizer.step()
    return during, after, logits, loss


def _save_full_state_dict(spec: RunSpec, model: nn.Module, ctx: Context, path: Path | None) -> str | None:
    """Gather the full state dict onto rank 0 (CPU) and save it there; return its path as rank 0 prints it."""
    if spec.strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        # A collective: every rank takes part, only rank 0 receives the tensors.
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if path is None:
        return None
    if ctx.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
    return display_path(path)


# ----------------------------------------------------------------------------------------------
# The launcher
# ----------------------------------------------------------------------------------------------

class WorkerFailed(RuntimeError):
    """A rank failed; the message holds its traceback (or exit status) and the tail of its output."""

    def __init__(self, rank: int, message: str) -> None:
        super().__init__(message)
        self.rank = rank


def new_run_dir(parent: Path | str, keep: int = 3) -> Path:
    """A new folder under ``parent`` for one launch's files; all but the newest ``keep`` earlier ones are removed.

    Launches going on at the same time (two notebooks, two test passes in parallel) must not share a folder:
    each would overwrite the other's job files and state dicts.
    """
    check_int("keep", keep, min_value=1)
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for old in sorted(parent.glob("run-*"))[:-keep]:  # the names sort by creation time
        shutil.rmtree(old, ignore_errors=True)
    folder = parent / f"run-{datetime.now():%Y%m%d-%H%M%S-%f}-{os.getpid()}"
    folder.mkdir()
    return folder


def launch(runs: list[RunSpec], world_size: int = 2, out_dir: Path | str | None = None,
           timeout_s: float = 300.0, collective_timeout_s: float = 60.0) -> dict[str, list[dict[str, Any]]]:
    """Run every spec on ``world_size`` fresh worker processes; return ``{run name: [report of rank 0, 1, ...]}``.

    All runs share one launch (starting processes costs seconds) and take turns, one training step each
    (``run_in_turns``), so that their step times are comparable on a busy machine. Raises ``WorkerFailed`` with the
    failing rank's traceback as soon as a rank fails, ``TimeoutError`` after ``timeout_s``; either
    way every worker is killed before this returns. Full state dicts go to ``out_dir/<name>.pt``; two
    launches at the same time need two ``out_dir`` (``new_run_dir``).
    The digits travel to the workers as a file of tensors (cheaper than importing scikit-learn in each).
    """
    from course_lib.data import digits_split

    check_int("world_size", world_size, min_value=1)
    check_float("timeout_s", timeout_s, min_value=0.0, min_inclusive=False)
    names = [spec.name for spec in runs]
    if not runs or len(set(names)) != len(names):
        raise ValueError(f"runs must be a non-empty list with distinct names, got {names}")
    for spec in runs:
        spec.check_world_size(world_size)
    out = Path(out_dir) if out_dir is not None else output_dir("distributed")
    work = out / "ranks"
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("rank*"):
        old.unlink()
    job = {"runs": [asdict(spec) for spec in runs], "world_size": world_size, "port": free_port(),
           "out_dir": str(out.resolve()), "collective_timeout_s": collective_timeout_s, "parent_pid": os.getpid()}
    (work / "job.json").write_text(json.dumps(job))
    torch.save(digits_split().tensors(), work / "data.pt")
    package_parent = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",  # 1 thread per rank: no oversubscription of the cores
           "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(world_size):
            with open(work / f"rank{rank}.log", "wb") as log:  # the child's stdout and stderr
                procs.append(subprocess.Popen([sys.executable, "-m", "course_lib.distributed", str(work), str(rank)],
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                              env=env, start_new_session=True))
        _wait(procs, work, time.monotonic() + timeout_s, timeout_s)
    finally:
        _kill(procs)
    reports = [json.loads((work / f"rank{rank}.json").read_text()) for rank in range(world_size)]
    return {name: [reports[rank][i] for rank in range(world_size)] for i, name in enumerate(names)}


def _wait(procs: list[subprocess.Popen], work: Path, deadline: float, timeout_s: float) -> None:
    """Return when every rank exited with 0; raise at the first failure or at the deadline."""
    while True:
        codes = [p.poll() for p in procs]
        failed = [rank for rank, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            _kill(procs)
            raise _failure(failed, codes, work)
        if all(code == 0 for code in codes):
            return
        if time.monotonic() > deadline:
            _kill(procs)
            tails = "\n".join(f"--- rank {r} output ---\n{_tail(work / f'rank{r}.log')}" for r in range(len(procs)))
            raise TimeoutError(f"the {len(procs)}-rank job did not finish within {timeout_s:g} s; "
                               f"all ranks were killed\n{tails}")
        time.sleep(0.05)


def _failure(failed: list[int], codes: list[int | None], work: Path) -> WorkerFailed:
    """The error of the rank that failed first (the earliest traceback file), with its output's tail."""
    errors = {r: work / f"rank{r}.error" for r in failed if (work / f"rank{r}.error").exists()}
    if errors:
        rank = min(errors, key=lambda r: errors[r].stat().st_mtime_ns)
        cause = errors[rank].read_text()
    else:
        rank = failed[0]
        code = codes[rank]
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        cause = f"it ended with {how} and left no traceback"
    return WorkerFailed(rank, f"rank {rank} of {len(codes)} failed; the other ranks were stopped.\n{cause}"
                              f"--- rank {rank} output (tail) ---\n{_tail(work / f'rank{rank}.log')}")


def _tail(path: Path, lines: int = 20) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _kill(procs: list[subprocess.Popen]) -> None:
    """Kill every worker still running (its whole session, so nothing it started survives) and reap it."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait()


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this worker if its parent dies (a crashed kernel must not leave ranks behind)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent was already gone before prctl took effect
        os._exit(1)


def _worker_main(work: Path, rank: int) -> None:
    """Entry point of one worker process: run every spec of the job, write the report, exit cleanly."""
    job = json.loads((work / "job.json").read_text())
    _die_with_parent(job["parent_pid"])
    code = 1
    try:
        torch.set_num_threads(1)
        ctx = init_process_group(rank, job["world_size"], f"tcp://127.0.0.1:{job['port']}",
                                 job["collective_timeout_s"])
        data = torch.load(work / "data.pt", weights_only=True)
        specs = [RunSpec(**{**fields, "channels": tuple(fields["channels"])}) for fields in job["runs"]]
        reports = run_in_turns([training(spec, ctx, data, Path(job["out_dir"]) / f"{spec.name}.pt") for spec in specs])
        tmp = work / f"rank{rank}.json.tmp"
        tmp.write_text(json.dumps(reports))
        tmp.replace(work / f"rank{rank}.json")
        code = 0
    except BaseException:
        (work / f"rank{rank}.error").write_text(traceback.format_exc())
    finally:
        exit_process(code)


if __name__ == "__main__":
    _worker_main(Path(sys.argv[1]), int(sys.argv[2]))
