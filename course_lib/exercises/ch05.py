"""Checkers for notebook 05 (FSDP), in notebook order: shard a model, rows and bytes per rank, largest all-gather."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from course_lib.exercises import ExerciseFailed, attempt, expect, expect_close, passed
from course_lib.fsdp import PARTS, ParamShard, one_process_group, shard_rows, zero_bytes_per_rank
from course_lib.models import SimpleCNN

_WHAT_STAGE_SHARDS = {0: "nothing (DDP)", 1: "the optimizer state", 2: "the optimizer state and the gradients",
                      3: "the optimizer state, the gradients and the parameters"}


def check_shard(fn: Callable[[nn.Module, DeviceMesh], object]) -> None:
    """Exercise 5.1: ``fn(model, mesh)`` makes each block an FSDP unit, then the root; checked in a 1-process group."""
    title = "Exercise 5.1 (shard a model)"
    torch.manual_seed(0)
    model = SimpleCNN(channels=(8, 16), hidden=32)
    unsharded, X = copy.deepcopy(model), torch.randn(4, 1, 8, 8)
    blocks = [name for name, block in model.named_children() if any(True for _ in block.parameters())]
    with one_process_group() as mesh:  # rank 0 of 1: the same calls as on N ranks, without starting processes
        try:
            attempt(title, fn, model, mesh)
        except ExerciseFailed as failure:
            if not isinstance(model, FSDPModule):
                raise
            raise ExerciseFailed(f"{failure}. The root was sharded before this error: fully_shard each block "
                                 "first and the root last (the root's parameters are then already DTensors)") from None
        missed = [name for name in blocks if not isinstance(model.get_submodule(name), FSDPModule)]
        expect(title, not (isinstance(model, FSDPModule) and missed == blocks),
               "only the root is sharded: the whole model is then one unit, all-gathered at once. "
               "Call fully_shard(block, mesh=mesh) on each block first, then fully_shard(model, mesh=mesh)")
        expect(title, not missed, f"blocks {missed} are not FSDP units: call fully_shard(block, mesh=mesh) "
                                  "for every child of the model (for block in model.children())")
        expect(title, isinstance(model, FSDPModule),
               "every block is a unit but the root is not: call fully_shard(model, mesh=mesh) last, after the blocks")
        plain = [name for name, p in model.named_parameters() if not isinstance(p, DTensor)]
        expect(title, not plain, f"parameters {plain} are not DTensors: shard the model in place, with mesh=mesh")
        with torch.no_grad():
            expect_close(f"{title}: output of the sharded model vs the unsharded copy", model(X), unsharded(X),
                         atol=1e-6, rtol=0)
    passed(title, f"{len(blocks)} blocks and the root are FSDP units, every parameter is a DTensor, "
                  "and the output equals the unsharded model's")


def check_shard_rows(fn: Callable[[int, int], list[int]], shards: list[list[ParamShard]]) -> None:
    """Exercise 5.2: rows of dim 0 per rank, as FSDP2 splits them; ``shards[rank]`` are the run's shard facts."""
    title = "Exercise 5.2 (rows per rank)"
    for dim0, N in [(8, 2), (10, 4), (3, 4), (320, 3), (1, 1)]:
        got = attempt(title, fn, dim0, N)
        expected = shard_rows(dim0, N)
        expect(title, list(got) == expected,
               f"{dim0} rows over {N} ranks: expected {expected}, got {list(got)}. FSDP2 uses torch.chunk: "
               f"every rank gets ceil({dim0}/{N}) = {math.ceil(dim0 / N)} rows until the rows run out")
    world_size = len(shards)
    for i, fact in enumerate(shards[0]):
        measured = [rank_facts[i].local_shape[0] for rank_facts in shards]
        predicted = list(fn(fact.global_shape[0], world_size))
        expect(title, predicted == measured,
               f"{fact.name} {fact.global_shape}: the run's ranks held {measured} rows, "
               f"you predicted {predicted}")
    passed(title, f"matches torch.chunk and the local shapes of all {len(shards[0])} parameters in the run")


def check_zero_bytes(fn: Callable[[int, int, int], dict[str, float]], measured: dict[str, dict[str, float]],
                     n_params: int, world_size: int) -> None:
    """Exercise 5.3: bytes per rank at each ZeRO stage (fp32 + AdamW), and against the measured DDP/FSDP runs.

    ``measured`` maps ``"ddp"`` and ``"fsdp"`` to the bytes per part one rank held, averaged over ranks.
    """
    title = "Exercise 5.3 (bytes per rank)"
    for P, N, stage in [(1000, 4, 0), (1000, 4, 1), (1000, 4, 2), (1000, 4, 3), (10, 1, 3), (n_params, world_size, 3)]:
        got = attempt(title, fn, P, N, stage)
        expect(title, isinstance(got, dict) and set(got) == set(PARTS),
               f"return a dict with keys {list(PARTS)}, got {got!r}")
        expected = zero_bytes_per_rank(P, N, stage)
        for part in PARTS:
            expect(title, math.isclose(float(got[part]), expected[part]),
                   f"{part} for P={P}, N={N}, stage {stage}: expected {expected[part]:g} B, "
                   f"got {float(got[part]):g} B. "
                   f"Per parameter fp32 + AdamW costs params 4, grads 4, optimizer 8 bytes; stage {stage} shards "
                   f"{_WHAT_STAGE_SHARDS[stage]} (divide by N)")
    for name, stage in (("ddp", 0), ("fsdp", 3)):
        predicted = fn(n_params, world_size, stage)
        for part in PARTS:
            expect_close(f"{title}: your {name} {part} vs the bytes measured in the run", float(predicted[part]),
                         float(measured[name][part]), atol=0.5, rtol=0)
    passed(title, f"the formulas match the {world_size}-rank run: DDP {sum(measured['ddp'].values()):,.0f} B, "
                  f"FSDP {sum(measured['fsdp'].values()):,.0f} B per rank")


def check_largest_all_gather(fn: Callable[[dict[str, list[list[int]]]], tuple[str, int]],
                             layer_shapes: dict[str, list[list[int]]], gathered_during_forward: dict[str, int]) -> None:
    """Exercise 5.4: the FSDP unit whose all-gather is largest, and its bytes, against the measured run."""
    title = "Exercise 5.4 (largest all-gather)"
    got = attempt(title, fn, layer_shapes)
    expect(title, isinstance(got, tuple) and len(got) == 2, f"return (layer name, bytes), got {got!r}")
    name, nbytes = got
    measured_name = max(gathered_during_forward, key=gathered_during_forward.get)
    expect(title, name == measured_name,
           f"you chose {name!r}; while it ran forward the run held the most gathered bytes in {measured_name!r} "
           f"({gathered_during_forward[measured_name]:,} B): count weights and biases, all their elements")
    expect_close(f"{title}: bytes of {name}", float(nbytes), float(gathered_during_forward[measured_name]),
                 atol=0.5, rtol=0)
    passed(title, f"{name} needs a temporary {nbytes:,} B (float32), as measured")
