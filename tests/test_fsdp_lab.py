"""course_lib.tools.fsdp_lab: notebook 05's measuring runs, on 2 real ranks.

Sharded training equals single-process training (float64; float32 to round-off over a few steps), the
meta-device start equals the seeded one, the probes see what the units imply (collectives, their bytes,
two padded buffers per forward all-gather, DDP's buckets, ranks that disagree), and each epoch's DCP
checkpoint loads into a plain model.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from distributed import leftover_processes, max_difference, port_is_free
from importcheck import heavy

from course_lib import roundoff
from course_lib.fsdp import padding_elements
from course_lib.memory import count_parameters
from course_lib.models import SimpleCNN
from course_lib.tools import fsdp_lab
from course_lib.tools.fsdp_lab import RunSpec, run_in_turns
from course_lib.tools.launch import free_port, launch

MODEL = {"channels": (32, 64), "hidden": 321}  # notebook 05's model: fc1's 321 rows do not split evenly


def test_two_rank_fsdp_equals_single_process_and_issues_the_collectives_of_its_units(tmp_path: Path) -> None:
    f64 = dict(dtype="float64", global_batch_size=448)  # 3 steps per epoch
    runs = [RunSpec("single64", strategy="single", profile=True, **f64, **MODEL),
            RunSpec("fsdp64", profile=True, checkpoint=True, **f64, **MODEL),
            RunSpec("meta64", init="meta", **f64, **MODEL),
            RunSpec("ddp", strategy="ddp", profile=True, max_steps=3, **MODEL),
            RunSpec("single32", strategy="single", max_steps=4, **MODEL),
            RunSpec("fsdp32", max_steps=4, **MODEL),
            RunSpec("fsdp_bf16", mixed_precision=True, profile=True, max_steps=3, **MODEL),
            RunSpec("keep_fc2", no_reshard=("fc2",), profile=True, max_steps=3, **MODEL),
            RunSpec("unseeded", init="unseeded", max_steps=1, **MODEL)]
    port = free_port()
    results = launch(runs, world_size=2, run_dir=tmp_path, port=port, worker=_run_rank_noting_imports)
    assert not leftover_processes() and port_is_free(port)
    for rank in range(2):  # the ranks were handed the data: no scikit-learn, and no plotting either
        assert (tmp_path / f"rank{rank}.heavy-imports").read_text().split() == ["numpy", "torch"]
    state = {name: torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in results}
    assert max_difference(state["fsdp64"], state["single64"]) < roundoff(torch.float64)
    assert max_difference(state["meta64"], state["fsdp64"]) == 0.0  # meta device + rank 0's weights: the same run
    assert max_difference(state["fsdp32"], state["single32"]) < roundoff(torch.float32, ulps=100)
    model = SimpleCNN(**MODEL)
    layers = [name for name, layer in model.named_children() if any(True for _ in layer.parameters())]
    unit_bytes = {name: 4 * count_parameters(layer) for name, layer in model.named_children()}  # float32
    padded = {name: 4 * sum(math.prod(p.shape) + padding_elements(tuple(p.shape), 2) for p in layer.parameters())
              for name, layer in model.named_children()}
    assert padded["fc1"] > unit_bytes["fc1"] and padded["conv1"] == unit_bytes["conv1"]  # 321 rows: padded
    for rank in range(2):
        fsdp64, single = results["fsdp64"][rank], results["single64"][rank]
        assert fsdp64.units == layers  # fully_shard on each layer; the root owns no parameter of its own
        assert len(fsdp64.losses) == 6 and len(fsdp64.epoch_losses) == 2
        assert 0 < fsdp64.fastest_step_seconds <= fsdp64.seconds_per_step  # the minimum of the steps the median is of
        assert max(abs(a - b) for a, b in zip(fsdp64.losses, single.losses, strict=True)) < roundoff(torch.float64)
        for part in ("params", "grads", "optimizer"):  # the shards of both ranks add up to the whole
            assert sum(r.memory[part] for r in results["fsdp64"]) == single.memory[part]
        fc1 = next(f for f in fsdp64.shards if f.name == "fc1.weight")
        assert (fc1.global_shape, fc1.local_shape, fc1.placements) == ((321, 256), (161 - rank, 256), ("S(0)",))
        # Per unit and step: all-gather in forward and again in backward, one reduce-scatter of the gradients.
        units = len(fsdp64.units)
        assert fsdp64.collectives == {"all_gather": 2 * units, "reduce_scatter": units, "all_reduce": 0,
                                      "broadcast": 0}
        # Bytes: each forward all-gather adds a flat buffer and the unsharded parameters, both padded (float64: x2)
        assert fsdp64.forward_gather_bytes == {u: 2 * 2 * padded[u] for u in layers}
        assert results["fsdp_bf16"][rank].forward_gather_bytes == {u: padded[u] for u in layers}
        assert fsdp64.bytes_over_step and fsdp64.held_bytes > 0
        assert results["ddp"][rank].ddp_bucket_bytes == 4 * count_parameters(model)  # a copy of the gradients
        assert results["fsdp64"][rank].disagreeing == [] and results["unseeded"][rank].disagreeing == [
            name for name, _ in model.named_parameters()]
    fsdp64 = results["fsdp64"][0]
    assert results["single64"][0].memory["params"] == 8 * count_parameters(model)
    gathered = [(c.unit, c.dtype, c.nbytes) for c in fsdp64.all_gathers]
    assert gathered == [(u, "float64", 2 * padded[u]) for u in [*layers, *reversed(layers)]]
    assert [(c.unit, c.nbytes) for c in fsdp64.reduce_scatters] == [(u, 2 * padded[u]) for u in reversed(layers)]
    keep_fc2 = [c.unit for c in results["keep_fc2"][0].all_gathers]
    assert keep_fc2 == [*layers, *reversed(layers[:-1])]  # fc2 stayed gathered: no backward all-gather for it
    rows = [(e.row, e.unit) for e in fsdp64.timeline]
    assert rows[:2 * len(layers)] == [(row, u) for u in layers for row in ("all-gather", "forward compute")]
    assert rows.index(("all-gather", "fc1 (prefetch)")) < rows.index(("backward compute", "fc2"))
    assert all(e.start_ms <= e.end_ms for e in fsdp64.timeline)
    # The DCP checkpoints: one per epoch; the last one loads into a plain model, in this process, exactly.
    checkpoints = sorted(p.name for p in (tmp_path / "fsdp64-dcp").iterdir())
    assert checkpoints == ["epoch-1", "epoch-2"]
    plain = {"model": SimpleCNN(**MODEL).double().state_dict()}
    with pytest.warns(UserWarning, match="single process"):
        dcp.load(plain, checkpoint_id=tmp_path / "fsdp64-dcp" / "epoch-2", no_dist=True)
    assert max_difference(plain["model"], state["fsdp64"]) == 0.0
    # bfloat16 mixed precision: the same float32 state, half the bytes gathered, gradients reduced in float32
    fp32, bf16 = results["fsdp32"][0], results["fsdp_bf16"][0]
    assert fp32.memory == bf16.memory and fp32.dtypes["gradients"] == bf16.dtypes["optimizer moments"] == "float32"
    assert bf16.dtypes["gathered weight in forward"] == bf16.dtypes["activations (layer input)"] == "bfloat16"
    assert [2 * c.nbytes for c in bf16.all_gathers] == [c.nbytes for c in fp32.all_gathers[:len(bf16.all_gathers)]]
    assert [c.nbytes for c in bf16.reduce_scatters] == [c.nbytes for c in fp32.reduce_scatters]
    assert not results["single32"][0].all_gathers and not fp32.timeline  # not FSDP; not profiled


def _run_rank_noting_imports(runs: list[RunSpec], out_dir: Path, timeout_s: float, data: tuple) -> list:
    """``run_rank``, then a note of the heavy packages this rank's process has imported."""
    results = fsdp_lab.run_rank(runs, out_dir, timeout_s, data)
    loaded = heavy({name.split(".")[0] for name in sys.modules})
    (out_dir / f"rank{os.environ['RANK']}.heavy-imports").write_text(" ".join(loaded))
    return results


def test_run_spec_refuses_bad_options() -> None:
    with pytest.raises(ValueError, match="strategy must be one of 'single', 'ddp', 'fsdp', got 'zero'"):
        RunSpec("x", strategy="zero")
    with pytest.raises(ValueError, match="are FSDP options"):
        RunSpec("x", strategy="ddp", mixed_precision=True)
    with pytest.raises(ValueError, match="init must be one of 'seeded', 'meta', 'unseeded', got 'random'"):
        RunSpec("x", init="random")
    with pytest.raises(ValueError, match="no_reshard unit must be one of 'conv1', 'conv2', 'fc1', 'fc2', got 'fc3'"):
        RunSpec("x", no_reshard=("fc3",))


def test_run_in_turns_takes_one_step_of_each_run_until_all_have_finished() -> None:
    order = []

    def training(name: str, steps: int):
        for step in range(steps):
            order.append(f"{name}{step}")
            yield
        return name

    assert run_in_turns([training("a", 3), training("b", 1)]) == ["a", "b"]
    assert order == ["a0", "b0", "a1", "a2"]
