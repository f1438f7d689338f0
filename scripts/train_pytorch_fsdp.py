"""Train the SimpleCNN on the digits with FSDP (``fully_shard``), on one process, on N, or on several machines.

    python scripts/train_pytorch_fsdp.py                        # world size 1: no torchrun needed
    torchrun --nproc_per_node=2 scripts/train_pytorch_fsdp.py   # 2 ranks: gloo on CPU, NCCL with 2 GPUs
    ./scripts/run_fsdp.sh --epochs 5                            # one rank per GPU, else 2 CPU ranks
    torchrun --nnodes=2 --nproc_per_node=G --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
        scripts/train_pytorch_fsdp.py                           # on each of 2 machines (scripts/fsdp.sbatch: SLURM)

Every rank runs ``course_lib.fsdp.run_rank``, the code notebook 05 launches from a notebook. Each global
batch is split evenly across the ranks and FSDP averages the gradients, so for a given
``--global-batch-size`` the results do not depend on the number of ranks, up to float32 round-off
(tests/test_fsdp.py checks 1 vs 2 ranks, and 2 machines vs 1). Only rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from torch.distributed.elastic.multiprocessing.errors import record

from course_lib import display_path, output_dir
from course_lib.fsdp import RunSpec, exit_process, free_port, run_rank


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (see the module docstring); values are validated in ``main``."""
    parser = argparse.ArgumentParser(description="Train SimpleCNN on the digits with FSDP.")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (a quick check)")
    parser.add_argument("--global-batch-size", type=int, default=96, help="summed over all ranks (default 96)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0, help="model initialisation and data order")
    parser.add_argument("--out", default=str(output_dir("checkpoints") / "simple_cnn_fsdp.pt"),
                        help="where rank 0 saves the full state dict (default: outputs/checkpoints/)")
    parser.add_argument("--metrics-json", default=None, help="also write world size, final loss, test accuracy here")
    return parser


@record  # under torchrun, a failing rank's traceback becomes the reported root cause
def main(argv: list[str] | None = None) -> int:
    """Train, evaluate and save; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if "MASTER_ADDR" not in os.environ:  # started without torchrun: a group of one, as torchrun would describe it
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    out = Path(args.out)
    try:
        spec = RunSpec(out.stem, epochs=args.epochs, max_steps=args.max_steps,
                       global_batch_size=args.global_batch_size, lr=args.lr, seed=args.seed)
        spec.check_world_size(world_size)
    except ValueError as exc:
        parser.error(str(exc))  # exit status 2 with the usage line
    [result] = run_rank([spec], out.parent)
    if rank == 0:
        print(f"World size: {world_size}; FSDP units: {', '.join(result.units)}; "
              f"global batch {spec.global_batch_size} = {world_size} x {spec.global_batch_size // world_size}")
        for epoch, loss in enumerate(result.epoch_losses, start=1):
            print(f"Epoch {epoch}/{args.epochs}, Loss: {loss:.4f}")
        print(f"Test Accuracy: {100 * result.test_accuracy:.2f}%")
        print(f"Model saved to {display_path(out)}")
        if args.metrics_json:
            metrics = {"world_size": world_size, "final_loss": result.losses[-1], "losses": result.losses,
                       "test_accuracy": result.test_accuracy}
            Path(args.metrics_json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.metrics_json).write_text(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    exit_process(main())  # skips interpreter shutdown, which can race with a gloo thread (see exit_process)
