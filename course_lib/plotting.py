"""Plots the lessons share: loss curves, and optimization paths drawn over loss contours."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np


def plot_loss_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str, xlabel: str = "epoch",
                     ylabel: str = "loss", log_y: bool = True, ax: plt.Axes | None = None) -> plt.Axes:
    """Draw one line per ``name: (x, loss)`` on shared axes, log-scaled losses by default."""
    if not curves:
        raise ValueError("curves must hold at least one (x, loss) pair, got none")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for name, (x, loss) in curves.items():
        ax.plot(x, loss, label=name, linewidth=1.5)
    if log_y:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_paths_on_contours(loss_fn: Callable[[np.ndarray], np.ndarray], paths: Mapping[str, np.ndarray],
                           title: str, minimum: np.ndarray | None = None, margin: float = 0.3,
                           resolution: int = 120, labels: tuple[str, str] = ("$w_1$", "$w_2$"),
                           ax: plt.Axes | None = None) -> plt.Axes:
    """Draw the contours of a loss over two weights and each ``name: (steps, 2)`` path across them.

    ``loss_fn`` maps an array of weight pairs, shape ``(..., 2)``, to the losses, shape ``(...)``; the
    window covers every path (and ``minimum``, marked with a star) plus ``margin`` of its size. The
    paths are expected to share their first point, marked as the start.
    """
    if not paths:
        raise ValueError("paths must hold at least one (steps, 2) array, got none")
    points = np.concatenate([np.asarray(p) for p in paths.values()] + ([np.reshape(minimum, (1, 2))]
                                                                        if minimum is not None else []))
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"each path must have shape (steps, 2), got points of shape {points.shape}")
    low, high = points.min(axis=0), points.max(axis=0)
    pad = margin * np.maximum(high - low, 1e-3)
    grid = np.stack(np.meshgrid(np.linspace(low[0] - pad[0], high[0] + pad[0], resolution),
                                np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)), axis=-1)
    surface = loss_fn(grid)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    levels = np.geomspace(max(surface.min(), 1e-12), surface.max(), 15)
    contours = ax.contour(grid[..., 0], grid[..., 1], surface, levels=levels, cmap="viridis", linewidths=0.8)
    ax.clabel(contours, fmt="%.2g", fontsize=7)
    for name, path in paths.items():
        path = np.asarray(path)
        line, = ax.plot(path[:, 0], path[:, 1], marker=".", markersize=3, linewidth=1, label=name, alpha=0.85)
        ax.plot(*path[-1], marker="o", color=line.get_color(), markersize=6)
    ax.plot(*points[0], marker="s", color="black", markersize=6, label="start", linestyle="none")
    if minimum is not None:
        ax.plot(*np.ravel(minimum), marker="*", color="red", markersize=12, label="minimum", linestyle="none")
    ax.set(title=title, xlabel=labels[0], ylabel=labels[1])
    ax.set_aspect("equal")  # same scale on both axes, so stretched contours look stretched
    ax.legend(loc="best", fontsize=8)
    return ax
