"""Checkers of notebook 05: reference answers pass, typical mistakes get a message that says what is wrong."""

from __future__ import annotations

import math

import pytest
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard

from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch05 import check_largest_all_gather, check_shard, check_shard_rows, check_zero_bytes
from course_lib.fsdp import ParamShard, shard_rows, zero_bytes_per_rank
from course_lib.memory import count_parameters
from course_lib.models import SimpleCNN

N_PARAMS = count_parameters(SimpleCNN(channels=(32, 64), hidden=320))  # the model notebook 05 trains
WORLD_SIZE = 2
MEASURED = {"ddp": zero_bytes_per_rank(N_PARAMS, WORLD_SIZE, 0), "fsdp": zero_bytes_per_rank(N_PARAMS, WORLD_SIZE, 3)}
SHAPES = {"conv1": [[32, 1, 3, 3], [32]], "fc1": [[320, 256], [320]], "fc2": [[10, 320], [10]]}
GATHERED = {layer: 4 * sum(math.prod(s) for s in shapes) for layer, shapes in SHAPES.items()}


def _shards(world_size: int) -> list[list[ParamShard]]:
    """What the ranks of a run report: the local rows of each parameter (torch.chunk)."""
    facts = [(f"{layer}.{i}", tuple(shape)) for layer, shapes in SHAPES.items() for i, shape in enumerate(shapes)]
    return [[ParamShard(name, shape, (shard_rows(shape[0], world_size)[rank], *shape[1:]), ("S(0)",), "float32")
             for name, shape in facts] for rank in range(world_size)]


def _shard(model: nn.Module, mesh: DeviceMesh) -> None:
    """The reference answer of exercise 5.1: each block, then the root."""
    for block in model.children():
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def test_reference_answers_pass(capsys: pytest.CaptureFixture) -> None:
    check_shard(_shard)
    check_shard(_shard)  # the checker's process group is gone after each check: it can run again
    check_zero_bytes(zero_bytes_per_rank, MEASURED, N_PARAMS, WORLD_SIZE)
    check_shard_rows(shard_rows, _shards(3))
    check_largest_all_gather(lambda shapes: ("fc1", GATHERED["fc1"]), SHAPES, GATHERED)
    assert capsys.readouterr().out.count("[passed]") == 5


def test_zero_bytes_mistakes() -> None:
    def grads_never_sharded(n_params: int, world_size: int, stage: int) -> dict[str, float]:
        return {**zero_bytes_per_rank(n_params, world_size, stage), "grads": 4 * n_params}

    with pytest.raises(ExerciseFailed, match="grads for P=1000, N=4, stage 2: expected 1000 B, got 4000 B"):
        check_zero_bytes(grads_never_sharded, MEASURED, N_PARAMS, WORLD_SIZE)
    with pytest.raises(ExerciseFailed, match="return a dict with keys"):
        check_zero_bytes(lambda p, n, s: 16 * p / n, MEASURED, N_PARAMS, WORLD_SIZE)
    with pytest.raises(ExerciseFailed, match="not attempted yet"):
        check_zero_bytes(lambda p, n, s: (_ for _ in ()).throw(NotImplementedError), MEASURED, N_PARAMS, WORLD_SIZE)


def test_shard_rows_mistakes() -> None:
    with pytest.raises(ExerciseFailed, match=r"10 rows over 4 ranks: expected \[3, 3, 3, 1\], got \[2, 2, 2, 4\]"):
        check_shard_rows(lambda d, n: [d // n] * (n - 1) + [d - (n - 1) * (d // n)], _shards(2))


def test_largest_all_gather_mistakes() -> None:
    with pytest.raises(ExerciseFailed, match="you chose 'fc2'"):
        check_largest_all_gather(lambda shapes: ("fc2", GATHERED["fc2"]), SHAPES, GATHERED)
    weights_only = 4 * 320 * 256
    with pytest.raises(ExerciseFailed, match="bytes of fc1"):
        check_largest_all_gather(lambda shapes: ("fc1", weights_only), SHAPES, GATHERED)


def test_shard_mistakes() -> None:
    def only_root(model: nn.Module, mesh: DeviceMesh) -> None:
        fully_shard(model, mesh=mesh)

    def no_root(model: nn.Module, mesh: DeviceMesh) -> None:
        for block in model.children():
            fully_shard(block, mesh=mesh)

    def first_two_blocks(model: nn.Module, mesh: DeviceMesh) -> None:
        for block in list(model.children())[:2]:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)

    with pytest.raises(ExerciseFailed, match="only the root is sharded"):
        check_shard(only_root)
    with pytest.raises(ExerciseFailed, match="the root is not: call fully_shard"):
        check_shard(no_root)
    with pytest.raises(ExerciseFailed, match=r"blocks \['fc1', 'fc2'\] are not FSDP units"):
        check_shard(first_two_blocks)
    def root_first(model: nn.Module, mesh: DeviceMesh) -> None:
        fully_shard(model, mesh=mesh)
        for block in model.children():
            fully_shard(block, mesh=mesh)

    with pytest.raises(ExerciseFailed, match="fully_shard each block first and the root last"):
        check_shard(root_first)
    with pytest.raises(ExerciseFailed, match="not attempted yet"):
        check_shard(lambda model, mesh: (_ for _ in ()).throw(NotImplementedError))
    check_shard(_shard)  # a failed check closed its process group too
