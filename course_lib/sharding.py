"""Memory per parameter and per rank under DDP, the ZeRO stages and FSDP: the formulas and a picture.

Training state per parameter with Adam(W): the parameter, its gradient and two optimizer moments.
Plain float32 training keeps 4 + 4 + 8 = 16 bytes; classic mixed precision keeps a 2-byte copy of
the parameter and a 2-byte gradient for compute, plus a float32 master copy and the two moments
(4 + 4 + 4 = 12 bytes): 2 + 2 + 12 = 16 bytes as well. ZeRO stage 1 shards the optimizer state
across ``world_size`` ranks, stage 2 also the gradients, stage 3 (= FSDP's full sharding) also the
parameters.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from course_lib.env import check_choice, check_int

PARTS = ("params", "grads", "optimizer")
ZERO_STAGES = (0, 1, 2, 3)
_SHARDED_FROM_STAGE = {"optimizer": 1, "grads": 2, "params": 3}  # the stage that starts sharding each part
_COLORS = {"params": "#2b6cb0", "grads": "#dd6b20", "optimizer": "#38a169"}


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
    return {part: n_params * per_param[part] / (world_size if stage >= _SHARDED_FROM_STAGE[part] else 1)
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
    row_size = math.prod(shape[1:])
    return sum(max(rows) - r for r in rows) * row_size


def draw_zero_stages(world_size: int = 2, ax: plt.Axes | None = None) -> plt.Axes:
    """Draw what each rank holds (bytes per parameter, fp32 + AdamW) under DP, DDP, ZeRO-1, ZeRO-2 and FSDP."""
    check_int("world_size", world_size, min_value=1, max_value=8)
    per_param = bytes_per_param("fp32")
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
            for part in PARTS:
                sharded = stage >= _SHARDED_FROM_STAGE[part]
                width = per_param[part] / (world_size if sharded else 1)
                if stage == -1 and part == "optimizer" and rank > 0:
                    width = 0.0  # DP: only GPU 0 runs the optimizer
                ax.barh(y, width, left=left, color=_COLORS[part], edgecolor="white", hatch="//" if sharded else None,
                        label=part if (stage, rank) == (-1, 0) else None)
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
