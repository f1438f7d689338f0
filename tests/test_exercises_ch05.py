"""Checkers of notebook 05: reference answers pass, typical mistakes get a message that says what is wrong."""

from __future__ import annotations

import pytest
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard

from course_lib.exercises import ExerciseFailed
from course_lib.exercises.ch05 import check_gather_prediction, check_keep_prediction, check_shard, check_shard_rows
from course_lib.fsdp import shard_rows
from course_lib.tools.fsdp_lab import ParamShard

SHAPES = {"conv1": [[32, 1, 3, 3], [32]], "fc1": [[321, 256], [321]], "fc2": [[10, 321], [10]]}
FC1_BYTES, FC1_PADDED = 4 * 321 * 257, 4 * 322 * 257  # fc1 over 2 ranks: 161 + 160 rows, padded to 2 x 161
DEFAULT, KEPT = (8, 838_320), (7, 825_440)  # (all-gathers, bytes) per step: notebook 05's runs
FC2_GATHER = 12_880


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
    check_shard_rows(shard_rows, _shards(3))
    check_gather_prediction(lambda: 2 * FC1_PADDED, 2 * FC1_PADDED, FC1_BYTES, FC1_PADDED)
    check_keep_prediction(lambda: KEPT, DEFAULT, KEPT, FC2_GATHER)
    check_gather_prediction(lambda: 2 * FC1_PADDED, 2 * FC1_PADDED + 700, FC1_BYTES, FC1_PADDED, slack=1536)  # CUDA
    assert capsys.readouterr().out.count("[passed]") == 6


def test_shard_rows_mistakes() -> None:
    with pytest.raises(ExerciseFailed, match=r"10 rows over 4 ranks: expected \[3, 3, 3, 1\], got \[2, 2, 2, 4\]"):
        check_shard_rows(lambda d, n: [d // n] * (n - 1) + [d - (n - 1) * (d // n)], _shards(2))


def test_prediction_mistakes_are_explained() -> None:
    with pytest.raises(ExerciseFailed, match=r"you predicted 329,988 B \(one copy of fc1's parameters, unpadded\).*"
                                             r"= 2 x 331,016 B. Two buffers"):
        check_gather_prediction(lambda: FC1_BYTES, 2 * FC1_PADDED, FC1_BYTES, FC1_PADDED)
    with pytest.raises(ExerciseFailed, match="two copies, but unpadded"):
        check_gather_prediction(lambda: 2 * FC1_BYTES, 2 * FC1_PADDED, FC1_BYTES, FC1_PADDED)
    with pytest.raises(ExerciseFailed, match="return a whole number of bytes"):
        check_gather_prediction(lambda: 1.5e6, 2 * FC1_PADDED, FC1_BYTES, FC1_PADDED)
    check_gather_prediction(lambda: (_ for _ in ()).throw(NotImplementedError), 1, 1, 1)  # prints, does not raise
    with pytest.raises(ExerciseFailed, match="you predicted 4 all-gathers per step, the launch counted 7"):
        check_keep_prediction(lambda: (4, KEPT[1]), DEFAULT, KEPT, FC2_GATHER)
    with pytest.raises(ExerciseFailed, match="The saving is one fc2 all-gather"):
        check_keep_prediction(lambda: (7, DEFAULT[1]), DEFAULT, KEPT, FC2_GATHER)
    with pytest.raises(ExerciseFailed, match=r"return \(all-gathers, bytes\) as two ints"):
        check_keep_prediction(lambda: 7, DEFAULT, KEPT, FC2_GATHER)


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
    check_shard(lambda model, mesh: (_ for _ in ()).throw(NotImplementedError))  # the learner copy: "[not done]"
    check_shard(_shard)  # a failed check closed its process group too
