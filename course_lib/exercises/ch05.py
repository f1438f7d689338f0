"""Checkers for notebook 05 (FSDP), in notebook order: shard a model, rows per rank, two predictions about memory."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from course_lib.exercises import ExerciseFailed, attempt, checker, expect, expect_close, passed
from course_lib.fsdp import one_process_group, shard_rows
from course_lib.models import SimpleCNN

if TYPE_CHECKING:
    from course_lib.tools.fsdp_lab import ParamShard


@checker
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


@checker
def check_shard_rows(fn: Callable[[int, int], list[int]], shards: list[list[ParamShard]]) -> None:
    """Exercise 5.2: rows of dim 0 per rank, as FSDP2 splits them; ``shards[rank]`` are the run's shard facts."""
    title = "Exercise 5.2 (rows per rank)"
    for dim0, N in [(8, 2), (10, 4), (3, 4), (321, 2), (1, 1)]:
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


@checker
def check_gather_prediction(fn: Callable[[], int], measured: int, unit_bytes: int, padded_bytes: int,
                            slack: int = 0) -> None:
    """Exercise 5.3 (predict, then run): the bytes fc1's forward all-gather added to a rank's memory.

    ``measured`` is what the run's allocator record showed; ``unit_bytes`` fc1's parameters in float32,
    ``padded_bytes`` the same with FSDP's padding (rows rounded up to a multiple of the world size);
    ``slack``: how much more the allocator may have handed out (CUDA rounds blocks up to 512 B).
    """
    title = "Exercise 5.3 (predict: bytes of fc1's all-gather)"
    got = attempt(title, fn)
    expect(title, isinstance(got, int), f"return a whole number of bytes (an int), got {got!r}")
    hints = {unit_bytes: "one copy of fc1's parameters, unpadded",
             padded_bytes: "one copy of fc1's parameters, padded",
             2 * unit_bytes: "two copies, but unpadded"}
    if not 0 <= measured - got <= slack:
        why = hints.get(got, f"{got / padded_bytes:.2f} padded copies of fc1's parameters")
        raise ExerciseFailed(
            f"{title}: you predicted {got:,} B ({why}); the run measured {measured:,} B "
            f"= {measured / padded_bytes:.3g} x {padded_bytes:,} B. Two buffers of the padded size exist at once: the "
            "flat buffer the all-gather writes into, and the unsharded parameters copied out of it (in forward "
            "FSDP2 frees the flat buffer only when the next unit starts its all-gather: its implicit forward "
            "prefetch). The padding: every rank's shard has the same number of rows")
    passed(title, f"{got:,} B, as measured{' (to the allocator rounding)' if measured != got else ''}: a flat "
                  f"all-gather buffer and the unsharded parameters, each {padded_bytes:,} B (padded)")


@checker
def check_keep_prediction(fn: Callable[[], tuple[int, int]], default: tuple[int, int], measured: tuple[int, int],
                          kept_unit_bytes: int) -> None:
    """Exercise 5.4 (predict, then launch): all-gathers and all-gathered bytes per step with fc2 not resharded.

    ``default`` and ``measured`` are ``(all-gathers, bytes)`` per step of the default run and of the run with
    ``no_reshard=("fc2",)``; ``kept_unit_bytes`` is fc2's all-gather output.
    """
    title = "Exercise 5.4 (predict, then launch: fc2 kept gathered)"
    got = attempt(title, fn)
    expect(title, isinstance(got, tuple) and len(got) == 2 and all(isinstance(v, int) for v in got),
           f"return (all-gathers, bytes) as two ints, got {got!r}")
    count, nbytes = got
    expect(title, count == measured[0],
           f"you predicted {count} all-gathers per step, the launch counted {measured[0]} (default run: "
           f"{default[0]}). Only the unit that stays gathered skips one: its backward all-gather; every other unit "
           "is still gathered once in forward and once in backward")
    expect(title, nbytes == measured[1],
           f"you predicted {nbytes:,} B all-gathered per step, the launch counted {measured[1]:,} B (default run: "
           f"{default[1]:,} B, fc2's all-gather {kept_unit_bytes:,} B). The saving is one fc2 all-gather")
    passed(title, f"{count} all-gathers and {nbytes:,} B per step, as launched: one fc2 all-gather "
                  f"({kept_unit_bytes:,} B) saved, for fc2's parameters held from forward to backward")


