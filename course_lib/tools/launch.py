"""Start N ranks from Python (a notebook or a test): ``launch``, and the small process helpers around it.

Tooling, not taught: notebook 05 calls ``launch``, whose ranks run ``course_lib.tools.fsdp_lab.run_rank``.
``launch`` starts the ranks once with ``torch.multiprocessing.start_processes`` (``spawn``); torch raises the
failing rank's traceback and stops the others, the process-group timeout ends a hung collective, and each
launch writes into its own folder (``new_run_dir``).
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import torch
import torch.multiprocessing as mp

from course_lib.data import digits_split
from course_lib.env import check_float, check_int, output_dir

if TYPE_CHECKING:
    from course_lib.tools.fsdp_lab import RankResult, RunSpec


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


Worker = Callable[[list["RunSpec"], Path, float, tuple[torch.Tensor, ...]], list["RankResult"]]


def launch(runs: list[RunSpec], world_size: int = 2, run_dir: Path | str | None = None,
           collective_timeout_s: float = 60.0, port: int | None = None,
           worker: Worker | None = None) -> dict[str, list[RankResult]]:
    """Run every spec on ``world_size`` new processes; return ``{run name: [result of rank 0, 1, ...]}``.

    ``torch.multiprocessing.start_processes`` starts the ranks once for all the runs (``spawn``: the
    worker must live in an importable module, not in a notebook). The digits are loaded here and handed
    to the ranks, which so import neither scikit-learn nor anything else they do not use. When a rank
    fails, torch stops the others and raises its traceback here (``ProcessRaisedException``); a rank
    stuck in a collective fails after ``collective_timeout_s``. Each rank writes its output to
    ``run_dir/rank<r>.log``, never to the caller's terminal or notebook; full state dicts go to
    ``run_dir/<name>.pt`` (default: a new folder under ``outputs/05_fsdp``). ``worker`` is what each
    rank runs (default ``course_lib.tools.fsdp_lab.run_rank``; tests pass one that misbehaves).
    """
    check_int("world_size", world_size, min_value=1)
    check_float("collective_timeout_s", collective_timeout_s, min_value=0.0, min_inclusive=False)
    names = [spec.name for spec in runs]
    if not runs or len(set(names)) != len(names):
        raise ValueError(f"runs must be a non-empty list with distinct names, got {names}")
    for spec in runs:
        spec.check_world_size(world_size)
    if worker is None:
        from course_lib.tools.fsdp_lab import run_rank as worker  # the ranks import it anyway; the script does not
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
