"""Seeding and device choice: the two things every notebook does in its third cell."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from course_lib.params import check_choice, check_int

DEVICES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and all GPUs)."""
    check_int("seed", seed, min_value=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses started from here


def get_device(device: str = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA, then MPS, then CPU; refuse a named device that is not present."""
    check_choice("device", device, DEVICES)
    cuda = torch.cuda.is_available()
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise ValueError(f"device must be available on this machine, got {device!r} (try 'auto' or 'cpu')")
    return torch.device(device)


def setup(seed: int = 0, device: str = "auto") -> torch.device:
    """Validate and apply the two common parameters: seed everything and return the chosen device."""
    seed_everything(seed)
    return get_device(device)
