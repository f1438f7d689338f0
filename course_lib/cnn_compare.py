"""Measure the NumPy and PyTorch CNNs against each other: lines of code and training time (notebook 03)."""

from __future__ import annotations

import ast
import inspect
import io
import textwrap
import tokenize
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from course_lib import numpy_nn as npnn
from course_lib.benchmark import median_seconds
from course_lib.models import SimpleCNN
from course_lib.training import train_one_epoch


def code_lines(*objects: object) -> int:
    """Lines of code in the source of functions, classes or modules; blanks, comments and docstrings don't count."""
    total = 0
    for obj in objects:
        source = textwrap.dedent(inspect.getsource(obj))
        docstrings: set[int] = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                        and isinstance(first.value.value, str):
                    docstrings.update(range(first.lineno, first.end_lineno + 1))
        skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
        code = {line for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type not in skip
                for line in range(tok.start[0], tok.end[0] + 1)}
        total += len(code - docstrings)
    return total


def train_step_seconds(model: npnn.SimpleCNN | nn.Module, X: np.ndarray, y: np.ndarray, repeats: int = 5) -> float:
    """Median time of one training step (forward, loss, backward, SGD update) on the batch ``X, y``.

    The step is ``train_one_epoch`` of the model's own library on a one-batch "epoch".
    """
    if isinstance(model, npnn.SimpleCNN):
        optimizer = npnn.SGD(lr=1e-3)
        return median_seconds(lambda: npnn.train_one_epoch(model, [(X, y)], optimizer), repeats)
    device = next(model.parameters()).device
    batch = [(torch.as_tensor(X, device=device), torch.as_tensor(y, device=device))]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    return median_seconds(lambda: train_one_epoch(model, batch, loss_fn, optimizer, device), repeats)


@dataclass
class SweepRow:
    """Time of one training step of each implementation for one batch size and image size."""

    batch_size: int
    image_size: int
    numpy_ms: float
    torch_ms: float

    @property
    def torch_speedup(self) -> float:
        """How many times faster PyTorch is than NumPy im2col (below 1: NumPy is faster)."""
        return self.numpy_ms / self.torch_ms


def speed_sweep(batch_sizes: list[int], image_sizes: list[int], device: torch.device, repeats: int = 3,
                seed: int = 0) -> list[SweepRow]:
    """Time a training step of the NumPy (im2col) and PyTorch SimpleCNN on random images of each size."""
    rng = np.random.default_rng(seed)
    rows = []
    for image_size in image_sizes:
        torch_model = SimpleCNN(image_size=image_size).to(device)
        numpy_model = npnn.SimpleCNN(image_size=image_size, seed=seed)
        for batch_size in batch_sizes:
            X = rng.standard_normal((batch_size, 1, image_size, image_size)).astype(np.float32)
            y = rng.integers(0, 10, batch_size)
            rows.append(SweepRow(batch_size, image_size, 1e3 * train_step_seconds(numpy_model, X, y, repeats),
                                 1e3 * train_step_seconds(torch_model, X, y, repeats)))
    return rows


def crossover(rows: list[SweepRow]) -> dict[int, int | None]:
    """For each image size, the smallest batch size from which PyTorch is faster at every larger batch (or None)."""
    result: dict[int, int | None] = {}
    for image_size in sorted({r.image_size for r in rows}):
        sizes = sorted((r for r in rows if r.image_size == image_size), key=lambda r: r.batch_size)
        result[image_size] = None
        for i, row in enumerate(sizes):
            if all(r.torch_speedup > 1 for r in sizes[i:]):
                result[image_size] = row.batch_size
                break
    return result
