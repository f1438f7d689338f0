"""Every plot of the course: loss curves and descent paths, autograd graphs, CNN filters and feature maps,
training histories, and ZeRO memory bars (``draw_zero_stages``). Each figure answers one question and has a
title, axis labels and, where there are several lines, a legend.

Figures take plain data (arrays, numbers, dicts); this module imports no lesson module, so importing it
costs matplotlib and torch only, and a lesson's own objects are computed by the notebook that draws them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from html import escape
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML

from course_lib.env import check_int

if TYPE_CHECKING:
    from course_lib.autograd import Value
    from course_lib.training import History

PART_COLORS = {"params": "#2b6cb0", "grads": "#dd6b20", "optimizer": "#38a169"}  # training state, in every figure


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


def plot_histories(histories: dict[str, History], title: str) -> plt.Figure:
    """Loss (train and test) and test accuracy per epoch, one line style per run."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, h) in enumerate(histories.items()):
        # later runs are drawn thinner on top, so that runs which coincide stay visible
        style = {"color": colors[i % len(colors)], "linewidth": max(4.0 - 1.5 * i, 1.0), "alpha": 0.8}
        epochs = np.arange(1, len(h.train_loss) + 1)
        ax_loss.plot(epochs, h.train_loss, label=f"{name}: train", **style)
        ax_loss.plot(epochs, h.test_loss, linestyle="--", label=f"{name}: test", **style)
        ax_acc.plot(epochs, 100 * np.array(h.test_accuracy), marker="o", markersize=3, label=name, **style)
    ax_loss.set(title="cross-entropy loss", xlabel="epoch", ylabel="loss (nats)", yscale="log")
    ax_acc.set(title="test accuracy", xlabel="epoch", ylabel="accuracy (%)")
    ax_loss.legend(fontsize=8)
    ax_acc.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_channels(images: np.ndarray, title: str, ncols: int = 8, symmetric: bool = False) -> plt.Figure:
    """Tile the channels of ``images`` (C, H, W), e.g. filters or feature maps, into one picture.

    ``symmetric=True`` shows signed values (weights) on a red-blue scale centred on zero, with a colour
    bar; otherwise each channel is scaled to its own range (feature maps).
    """
    from torchvision.utils import make_grid

    tiles = torch.as_tensor(np.asarray(images, dtype=np.float32))[:, None]
    ncols = min(ncols, len(tiles))
    fig, ax = plt.subplots(figsize=(1.0 * ncols + 1.2, 1.0 * math.ceil(len(tiles) / ncols) + 0.7))
    if symmetric:
        limit = float(tiles.abs().max()) or 1.0
        grid = make_grid(tiles, nrow=ncols, padding=1, pad_value=0.0)[0]
        shown = ax.imshow(grid.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        fig.colorbar(shown, ax=ax, fraction=0.03, label="weight")
    else:
        grid = make_grid(tiles, nrow=ncols, padding=1, normalize=True, scale_each=True, pad_value=0.5)[0]
        ax.imshow(grid.numpy(), cmap="magma")
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    return fig


def show_digit_grid(images: torch.Tensor, captions: list[str], title: str, nrow: int = 8) -> plt.Figure:
    """Tile ``images`` (N, 1, H, W) with ``torchvision.utils.make_grid`` and write a caption over each tile."""
    if len(images) != len(captions):
        raise ValueError(f"need one caption per image, got {len(captions)} captions for {len(images)} images")
    from torchvision.utils import make_grid

    padding = 2
    grid = make_grid(images.detach().cpu().float(), nrow=nrow, padding=padding, normalize=True, pad_value=0.2)
    rows, cols = math.ceil(len(images) / nrow), min(nrow, len(images))
    fig, ax = plt.subplots(figsize=(1.1 * cols + 0.4, 1.25 * rows + 0.6))
    ax.imshow(grid[0].numpy(), cmap="gray_r")
    tile_h, tile_w = images.shape[2] + padding, images.shape[3] + padding
    for i, caption in enumerate(captions):
        r, c = divmod(i, nrow)
        ax.text(c * tile_w + padding, r * tile_h + padding, caption, color="tab:red", fontsize=8, va="top",
                bbox={"facecolor": "white", "alpha": 0.7, "pad": 0.5, "edgecolor": "none"})
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    return fig


def side_by_side(left: str, right: str, left_title: str = "NumPy", right_title: str = "PyTorch") -> HTML:
    """Two code listings in two columns (rendered as HTML in Jupyter)."""
    cells = "".join(f'<td style="vertical-align:top;text-align:left"><b>{escape(title)}</b>'
                    f'<pre style="font-size:11px">{escape(code.rstrip())}</pre></td>'
                    for title, code in ((left_title, left), (right_title, right)))
    return HTML(f"<table><tr>{cells}</tr></table>")


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


def draw_zero_stages(world_size: int, per_param: Mapping[str, float], sharded_from: Mapping[str, int],
                     ax: plt.Axes | None = None) -> plt.Axes:
    """Draw what each rank holds under DP, DDP, ZeRO-1, ZeRO-2 and FSDP.

    ``per_param``: bytes per parameter of each part of the training state (e.g. ``fsdp.bytes_per_param("fp32")``);
    ``sharded_from``: the ZeRO stage from which each part is sharded (``fsdp.SHARDED_FROM_STAGE``).
    """
    check_int("world_size", world_size, min_value=1, max_value=8)
    if set(per_param) != set(sharded_from):
        raise ValueError(f"per_param and sharded_from must name the same parts, got {sorted(per_param)} "
                         f"and {sorted(sharded_from)}")
    groups = [("DP (nn.DataParallel): one process; GPU 0 steps, then re-copies the model to the others", -1),
              ("DDP = ZeRO-0: every rank holds everything; all-reduce averages the gradients", 0),
              ("ZeRO-1: shard the optimizer state", 1),
              ("ZeRO-2: also shard the gradients (reduce-scatter instead of all-reduce)", 2),
              ("FSDP = ZeRO-3: also shard the parameters (all-gather each layer just before use)", 3)]
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.45 * (world_size + 1.4) * len(groups) + 0.8))
    y, ticks, labels = 0.0, [], []
    for title, stage in groups:
        ax.text(0, y - 0.75, title, fontsize=10, fontweight="bold", va="center")
        for rank in range(world_size):
            left = 0.0
            for part in per_param:
                sharded = stage >= sharded_from[part]
                width = per_param[part] / (world_size if sharded else 1)
                if stage == -1 and part == "optimizer" and rank > 0:
                    width = 0.0  # DP: only GPU 0 runs the optimizer
                ax.barh(y, width, left=left, color=PART_COLORS[part], edgecolor="white",
                        hatch="//" if sharded else None, label=part if (stage, rank) == (-1, 0) else None)
                if sharded:
                    ax.text(left + width / 2, y, f"1/{world_size}", ha="center", va="center", color="white",
                            fontsize=8)
                left += width
            ax.text(left + 0.15, y, f"{left:g} B", va="center", fontsize=9)
            ticks.append(y)
            labels.append(f"GPU {rank}" if stage == -1 else f"rank {rank}")
            y += 1
        y += 1.1
    ax.set_yticks(ticks, labels)
    ax.set_ylim(y - 1.4, -1.4)
    ax.set_xlim(0, 18.5)
    ax.set_xlabel("bytes per model parameter held by each rank (float32 + AdamW; hatched = a 1/N shard)")
    ax.set_title(f"Who holds what with {world_size} ranks: sharding the training state stage by stage")
    ax.legend(loc="lower right")
    return ax


# --- lesson 01 ---
def value_graph_layers(root: Value) -> dict[Value, int]:
    """Layer of each node of ``root``'s graph: the longest path from ``root``, so every node sits below its users."""
    layers = {root: 0}
    for node in reversed(root.topological_order()):  # users before the nodes they use
        for child in node._prev:
            layers[child] = max(layers.get(child, 0), layers[node] + 1)
    return layers


def draw_value_graph(root: Value, title: str, names: Mapping[str, Value] | None = None,
                     ax: plt.Axes | None = None) -> plt.Axes:
    """Draw a ``Value``'s graph, output on top, leaves at the bottom, one arrow per use of a node."""
    labels = {id(node): name for name, node in (names or {}).items()}
    layers = value_graph_layers(root)
    rows: dict[int, list[Value]] = {}
    for node, layer in layers.items():
        rows.setdefault(layer, []).append(node)
    position = {id(node): ((i + 1) / (len(row) + 1), -layer)
                for layer, row in rows.items() for i, node in enumerate(row)}
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 1.3 * len(rows) + 0.6))
    boxes = {}
    for node in layers:
        name = labels.get(id(node), node._op or "leaf")
        if node._op and id(node) in labels:
            name += f" ({node._op})"
        boxes[id(node)] = ax.text(*position[id(node)], f"{name}\ndata={node.data:g}  grad={node.grad:g}",
                                  ha="center", va="center", fontsize=10,
                                  bbox={"boxstyle": "round,pad=0.4", "facecolor": "#dbe9f6", "edgecolor": "#2b6cb0"})
    for node in layers:
        for k, child in enumerate(node._prev):
            repeat = sum(c is child for c in node._prev[:k])  # a node used twice gets a second, curved arrow
            skips = layers[child] - layers[node] > 1  # an arrow past a layer bends around the nodes in between
            rad = -0.75 * skips + 0.35 * repeat * (-1 if skips else 1)
            ax.annotate("", xy=position[id(child)], xytext=position[id(node)],
                        arrowprops={"arrowstyle": "->", "color": "#9b2c2c", "shrinkA": 2, "shrinkB": 2,
                                    "patchA": boxes[id(node)].get_bbox_patch(),
                                    "patchB": boxes[id(child)].get_bbox_patch(),
                                    "connectionstyle": f"arc3,rad={rad}"})
    ax.set_xlim(0, 1)
    ax.set_ylim(-len(rows) + 0.4, 0.6)
    ax.set_title(title)
    ax.axis("off")
    return ax


# --- lesson 03 ---


def _draw_cells(ax: plt.Axes, values: np.ndarray, x0: float, title: str, gid: str,
                facecolor: Callable[[int, int], object] = lambda r, c: "#f2f2f2") -> None:
    """Draw a 2-D array as a table of numbered cells with its top-left corner at ``(x0, 0)`` (y points down)."""
    for (r, c), value in np.ndenumerate(values):
        ax.add_patch(plt.Rectangle((x0 + c, r), 1, 1, facecolor=facecolor(r, c), edgecolor="#555", linewidth=0.8,
                                   gid=gid))
        ax.text(x0 + c + 0.5, r + 0.5, f"{value:g}", ha="center", va="center", fontsize=9, gid=gid)
    ax.text(x0 + values.shape[1] / 2, -0.3, title, ha="center", va="bottom", fontsize=9)


def draw_im2col(image: np.ndarray, kernel: np.ndarray, cols: np.ndarray, stride: int = 1) -> plt.Figure:
    """Draw im2col on a small image: each k x k window (one colour each) becomes one row of ``cols``, the
    matrix lesson 03's ``cnn.im2col`` returns, and that matrix times the flattened kernel is the output."""
    image, kernel = np.asarray(image, dtype=np.float64), np.asarray(kernel, dtype=np.float64)
    if image.ndim != 2 or kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] > min(image.shape):
        raise ValueError(f"need a 2-D image and a square 2-D kernel no larger than it, got image {image.shape} "
                         f"and kernel {kernel.shape}")
    check_int("stride", stride, min_value=1)
    k, (h, w) = kernel.shape[0], image.shape
    ow = (w - k) // stride + 1  # the windows of one row of the picture (no padding)
    cols = np.asarray(cols, dtype=np.float64)
    if cols.ndim != 2 or cols.shape[1] != k * k or cols.shape[0] % ow:
        raise ValueError(f"cols must be the im2col matrix of this image (windows x {k * k}), got shape {cols.shape}")
    oh = cols.shape[0] // ow
    colors = plt.get_cmap("tab10").colors
    if oh * ow > len(colors):
        raise ValueError(f"at most {len(colors)} windows fit in the picture (one colour each), got {oh * ow}")
    output = cols @ kernel.ravel()
    fill = [(*colors[i], 0.45) for i in range(oh * ow)]            # window i's colour, translucent
    x_cols = w + 2.5
    x_kernel = x_cols + k * k + 1.5
    x_out = x_kernel + 2.5
    x_grid = x_out + 4
    fig, ax = plt.subplots(figsize=(0.42 * (x_grid + ow) + 0.5, 0.42 * max(h, k * k) + 1.2))
    _draw_cells(ax, image, 0, f"image {h}x{w}", "image")
    for i in range(oh * ow):
        r, c = divmod(i, ow)
        inset = 0.06 + 0.07 * i                                     # nested outlines keep overlapping windows apart
        ax.add_patch(plt.Rectangle((c * stride + inset, r * stride + inset), k - 2 * inset, k - 2 * inset,
                                   fill=False, edgecolor=colors[i], linewidth=2.5, gid="window"))
    _draw_cells(ax, cols, x_cols, f"im2col matrix\n{oh * ow} windows x {k * k} pixels", "cols",
                lambda r, c: fill[r])
    _draw_cells(ax, kernel.reshape(-1, 1), x_kernel, f"kernel {k}x{k}\nflattened", "kernel")
    _draw_cells(ax, output.reshape(-1, 1), x_out, "output", "output", lambda r, c: fill[r])
    _draw_cells(ax, output.reshape(oh, ow), x_grid, f"output {oh}x{ow}", "output grid",
                lambda r, c: fill[r * ow + c])
    middle = min(h, oh * ow) / 2
    for x, symbol in ((w + 1.25, "→"), (x_kernel - 0.75, "×"), (x_out - 0.75, "="), (x_out + 2.5, "→")):
        ax.text(x, middle, symbol, ha="center", va="center", fontsize=16)
    ax.text(x_out + 2.5, middle - 0.4, "reshape", ha="center", va="bottom", fontsize=8)
    ax.set_xlim(-0.3, x_grid + ow + 0.3)
    ax.set_ylim(max(h, k * k, oh * ow) + 0.3, -1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"im2col: each {k}x{k} window becomes a row, so the convolution is one matrix product")
    return fig


# --- lesson 05 ---

TIMELINE_ROWS = ("all-gather", "forward compute", "backward compute", "reduce-scatter")
_ROW_COLORS = {"all-gather": "tab:blue", "forward compute": "tab:green", "backward compute": "tab:olive",
               "reduce-scatter": "tab:red"}


def plot_step_timeline(timeline: list[tuple[str, str, float, float]], title: str,
                       ax: plt.Axes | None = None) -> plt.Axes:
    """Draw one training step as a Gantt chart: a row per kind of work, a bar per (row, unit, start ms, end ms).

    Prefetched all-gathers (unit ending in "(prefetch)") are hatched.
    """
    if not timeline:
        raise ValueError("timeline must hold at least one (row, unit, start_ms, end_ms) event")
    unknown = {event[0] for event in timeline} - set(TIMELINE_ROWS)
    if unknown:
        raise ValueError(f"rows must be among {TIMELINE_ROWS}, got {sorted(unknown)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 3.2))
    for row, unit, start, end in timeline:
        y = TIMELINE_ROWS.index(row)
        ax.barh(y, end - start, left=start, height=0.6, color=_ROW_COLORS[row], edgecolor="black", linewidth=0.5,
                hatch="//" if unit.endswith("(prefetch)") else None)
        ax.text((start + end) / 2, y - 0.4, unit.replace(" (prefetch)", "*"), ha="center", va="bottom", fontsize=7)
    ax.set_yticks(range(len(TIMELINE_ROWS)), TIMELINE_ROWS)
    ax.set_ylim(len(TIMELINE_ROWS) - 0.4, -0.8)
    ax.set_xlabel("time since the step started (ms, this machine)")
    ax.set_title(title)
    return ax


def plot_bytes_over_step(curves: Mapping[str, tuple[list[float], list[int]]], marks: list[tuple[float, str]],
                         title: str, xlabel: str = "time since the step started (ms, this machine)",
                         ax: plt.Axes | None = None) -> plt.Axes:
    """Bytes alive over one training step, one line per run (``label: (x, bytes)``), ``marks`` as dotted lines.

    ``marks`` are ``(x, label)`` moments of one of the runs (e.g. where each FSDP unit starts forward/backward).
    """
    if not curves:
        raise ValueError("curves must hold at least one run")
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 3.8))
    for label, (x, nbytes) in curves.items():
        ax.step(x, np.asarray(nbytes) / 2**20, where="post", lw=1.5, label=label)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # room for the marks' labels above the lines
    top = ax.get_ylim()[1]
    for x, label in marks:
        ax.axvline(x, color="grey", ls=":", lw=0.8)
        ax.text(x, top, label, rotation=90, va="top", ha="right", fontsize=7, color="grey")
    ax.set(xlabel=xlabel, ylabel="MiB alive on the rank", title=title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return ax


# --- lesson 06 ---


def draw_lora_shapes(d_out: int, d_in: int, r: int, name: str = "", ax: plt.Axes | None = None) -> plt.Axes:
    """Draw W (out x in, frozen) + B (out x r) @ A (r x in) to scale, each labelled with its number of values."""
    for arg, value in (("d_out", d_out), ("d_in", d_in), ("r", r)):
        check_int(arg, value, min_value=1)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    unit = 1.0 / max(d_out, d_in)  # the longest side is 1
    blocks = [("W (frozen)", d_out, d_in, "#a0aec0"), ("B", d_out, r, "#dd6b20"), ("A", r, d_in, "#38a169")]
    left, operators = 0.0, ["+", "@", ""]
    for k, ((label, rows, cols, color), operator) in enumerate(zip(blocks, operators, strict=True)):
        width, height = cols * unit, rows * unit
        ax.add_patch(plt.Rectangle((left, 1 - height), width, height, facecolor=color, edgecolor="black"))
        below = k == 1  # B's label goes under it, so that thin blocks keep their labels apart
        ax.text(left + width / 2, -0.06 if below else 1.04, f"{label}: {rows} x {cols}\n= {rows * cols:,} values",
                ha="center", va="top" if below else "bottom", fontsize=9)
        left += width + 0.15
        if operator:
            ax.text(left - 0.075, 0.5, operator, ha="center", va="center", fontsize=16)
    ax.set_xlim(-0.05, left)
    ax.set_ylim(-0.3, 1.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{name + ': ' if name else ''}LoRA trains r(in+out) = {r * (d_in + d_out):,} values "
                 f"instead of {d_in * d_out:,}", fontsize=10)
    return ax


def plot_nf4_levels(normalised: torch.Tensor, levels: torch.Tensor, ax: plt.Axes | None = None) -> plt.Axes:
    """Histogram of weights divided by their block's absmax, with the 16 NF4 levels as vertical lines."""
    if levels.numel() != 16:
        raise ValueError(f"levels must hold the 16 values of a 4-bit code, got {levels.numel()}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    ax.hist(normalised.detach().flatten().cpu().numpy(), bins=80, range=(-1, 1), color="#90cdf4",
            label="weights / block absmax")
    for i, level in enumerate(levels.tolist()):
        ax.axvline(level, color="#9b2c2c", linewidth=1, label="the 16 NF4 levels" if i == 0 else None)
    ax.set_xlabel("weight divided by its block's max |w|")
    ax.set_ylabel("number of weights")
    ax.set_title("NF4 puts its levels where normally distributed weights are dense")
    ax.legend(loc="upper left")
    return ax


def plot_saved_bytes_vs_length(lengths: list[int], saved_bytes: Mapping[str, list[int]],
                               ax: plt.Axes | None = None) -> plt.Axes:
    """Bytes saved for backward against sequence length, one line per implementation, on log-log axes."""
    if not saved_bytes or any(len(v) != len(lengths) for v in saved_bytes.values()):
        raise ValueError(f"saved_bytes must map names to one value per length ({len(lengths)}), "
                         f"got {({k: len(v) for k, v in saved_bytes.items()})}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in saved_bytes.items():
        ax.plot(lengths, [v / 2**20 for v in values], marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("sequence length T (tokens)")
    ax.set_ylabel("saved for backward (MiB)")
    ax.set_title("Attention memory kept for backward: T x T weights vs none")
    ax.legend()
    return ax


def plot_step_memory(stacks: Mapping[str, Mapping[str, int]], ax: plt.Axes | None = None) -> plt.Axes:
    """Stacked horizontal bars, one per configuration: the bytes alive at one training step's peak, by part (KiB)."""
    parts = list(next(iter(stacks.values()), {}))
    if not parts or any(list(stack) != parts for stack in stacks.values()):
        raise ValueError(f"stacks must map configurations to the same parts in the same order, got "
                         f"{({name: list(stack) for name, stack in stacks.items()})}")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.45 * len(stacks) + 1.6))
    names = list(stacks)
    left = [0.0] * len(names)
    for part, color in zip(parts, ("#a0aec0", "#dd6b20", "#2b6cb0", "#38a169", "#805ad5"), strict=False):
        widths = [stacks[name][part] / 2**10 for name in names]
        ax.barh(names, widths, left=left, color=color, label=part)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("bytes alive at the peak of one training step (KiB)")
    ax.set_title("One training step's peak memory, by what holds it (measured)")
    ax.legend(loc="lower right", fontsize=9)
    return ax
