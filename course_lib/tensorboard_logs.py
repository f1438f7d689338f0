"""TensorBoard runs under ``outputs/tensorboard``: a fresh folder per run, and the scalars read back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from course_lib.paths import output_dir


def fresh_log_dir(*parts: str) -> Path:
    """Return ``outputs/tensorboard/<parts...>`` emptied of earlier runs, so a re-run logs only itself."""
    if not parts:
        raise ValueError("fresh_log_dir needs a run name, e.g. fresh_log_dir('02_gradient_descent'), got none")
    path = output_dir("tensorboard", *parts)
    shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def read_scalars(log_dir: Path | str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read every scalar logged under ``log_dir`` (one run folder) as ``{tag: (steps, values)}``.

    Uses TensorBoard's own event reader; values come back as stored in the event file (float32).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = Path(log_dir)
    if not any(log_dir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(f"no TensorBoard event file in {log_dir.name!r}: was SummaryWriter closed?")
    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0 = keep every point
    accumulator.Reload()
    scalars = {}
    for tag in sorted(accumulator.Tags()["scalars"]):
        events = accumulator.Scalars(tag)
        scalars[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    return scalars
