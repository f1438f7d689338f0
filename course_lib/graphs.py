"""Walk and draw the graph autograd records (``grad_fn`` and its ``next_functions``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def grad_fn_chain(tensor: torch.Tensor) -> list[tuple[int, str]]:
    """Return ``(depth, node name)`` for every node reachable from ``tensor.grad_fn``, depth first."""
    if tensor.grad_fn is None:
        raise ValueError("tensor has no grad_fn: it is a leaf or was computed without gradient tracking")
    rows: list[tuple[int, str]] = []

    def visit(fn, depth: int) -> None:
        name = type(fn).__name__
        if name == "AccumulateGrad":
            leaf = fn.variable
            name += f" (leaf, shape {tuple(leaf.shape)})"
        rows.append((depth, name))
        for child, _ in fn.next_functions:
            if child is not None:
                visit(child, depth + 1)

    visit(tensor.grad_fn, 0)
    return rows


def draw_chain(labels: list[str], title: str, edge_labels: list[str] | None = None,
               ax: plt.Axes | None = None) -> plt.Axes:
    """Draw a linear computation graph top to bottom: one box per label, labelled arrows between them."""
    if edge_labels is not None and len(edge_labels) != len(labels) - 1:
        raise ValueError(f"need {len(labels) - 1} edge labels for {len(labels)} nodes, got {len(edge_labels)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 0.9 * len(labels) + 0.5))
    for i, label in enumerate(labels):
        y = len(labels) - 1 - i
        ax.text(0.5, y, label, ha="center", va="center", fontsize=11,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": "#dbe9f6", "edgecolor": "#2b6cb0"})
        if i + 1 < len(labels):
            ax.annotate("", xy=(0.5, y - 0.72), xytext=(0.5, y - 0.28),
                        arrowprops={"arrowstyle": "->", "color": "#444"})
            if edge_labels is not None:
                ax.text(0.55, y - 0.5, edge_labels[i], va="center", fontsize=10, color="#9b2c2c")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_title(title)
    ax.axis("off")
    return ax
