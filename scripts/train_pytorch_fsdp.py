"""Train the SimpleCNN on the digits with FSDP (``fully_shard``), on one process or on N.

    python scripts/train_pytorch_fsdp.py                        # world size 1: no torchrun needed
    torchrun --nproc_per_node=2 scripts/train_pytorch_fsdp.py   # 2 ranks: gloo on CPU, NCCL with 2 GPUs
    ./scripts/run_fsdp.sh --epochs 5                            # one rank per GPU, else 2 CPU ranks

Each global batch is split evenly across the ranks and FSDP averages the gradients, so for a given
``--global-batch-size`` the results do not depend on the number of ranks up to float32 round-off
(the final loss agrees within 1e-4; tests/test_distributed.py checks it). Only rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from course_lib import output_dir
from course_lib.data import digits_split
from course_lib.distributed import RunSpec, exit_process, free_port, init_process_group, train_run


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (see the module docstring); values are validated in ``main``."""
    parser = argparse.ArgumentParser(description="Train SimpleCNN on the digits with FSDP.")
    parser.add_argument("--epochs", type=int, default=3)
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
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    try:
        spec = RunSpec("fsdp", epochs=args.epochs, global_batch_size=args.global_batch_size, lr=args.lr,
                       seed=args.seed)
        spec.check_world_size(world_size)
    except ValueError as exc:
        parser.error(str(exc))  # exit status 2 with the usage line
    launched = "MASTER_ADDR" in os.environ  # set by torchrun; alone we form a group of one
    ctx = init_process_group(rank, world_size, "env://" if launched else f"tcp://127.0.0.1:{free_port()}")
    try:
        log = print if rank == 0 else (lambda _: None)
        log(f"Using device: {ctx.device} (backend {ctx.backend})")
        log(f"World size: {world_size}")
        split = digits_split()
        log(f"Loading the digits: {len(split.X_train)} training and {len(split.X_test)} test images of 8x8 pixels; "
            f"global batch {spec.global_batch_size} = {world_size} x {spec.global_batch_size // world_size} per rank")
        report = train_run(spec, ctx, split.tensors(), Path(args.out), log=log)
        log(f"Test Accuracy: {100 * report['test_accuracy']:.2f}%")
        log(f"\nModel saved to {report['state_dict']}")
        if rank == 0 and args.metrics_json:
            metrics = {"world_size": world_size, "final_loss": report["epochs"][-1]["loss"],
                       "test_accuracy": report["test_accuracy"], "epochs": args.epochs,
                       "global_batch_size": args.global_batch_size, "losses": report["losses"]}
            Path(args.metrics_json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.metrics_json).write_text(json.dumps(metrics, indent=1))
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    exit_process(main())  # os._exit after flushing: see exit_process for the shutdown race it avoids
