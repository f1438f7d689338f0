"""Train the SimpleCNN on the digits with FSDP (``fully_shard``), on one process, on N, or on several machines.

    python scripts/train_pytorch_fsdp.py                        # world size 1: no torchrun needed
    torchrun --nproc_per_node=2 scripts/train_pytorch_fsdp.py   # 2 ranks: gloo on CPU, NCCL with 2 GPUs
    ./scripts/run_fsdp.sh --epochs 5                            # one rank per GPU, else 2 CPU ranks
    torchrun --nnodes=2 --nproc_per_node=G --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
        scripts/train_pytorch_fsdp.py                           # on each of 2 machines (scripts/fsdp.sbatch: SLURM)
    python scripts/train_pytorch_fsdp.py --epochs 3 --checkpoint-dir outputs/fsdp_ckpt   # a checkpoint per epoch
    torchrun --nproc_per_node=3 scripts/train_pytorch_fsdp.py --epochs 5 --checkpoint-dir outputs/fsdp_ckpt --resume

The recipe of pytorch/examples' distributed/FSDP2/train.py: the model is built on the meta device (no rank's
training device ever holds all of it), sharded block by block, and filled with rank 0's seeded weights, which
rank 0 builds once in CPU memory and broadcasts (FSDP2 does not broadcast them itself). Each global batch is
split evenly across the ranks and FSDP averages the gradients, so for a given ``--global-batch-size`` the
results do not depend on the number of ranks, up to float32 round-off; a checkpoint (DCP: each rank writes its
shards) resumes on any number of ranks (tests/test_fsdp.py checks both). Only rank 0 prints; its last line is
the test accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from course_lib import check_float, check_int, display_path, output_dir
from course_lib.data import digits_split, rank_batches
from course_lib.fsdp import (
    checkpoint_epochs,
    fsdp_units,
    gather_full_state_dict,
    latest_checkpoint,
    load_checkpoint,
    load_full_state_dict,
    save_checkpoint,
    setup_process_group,
    shard_meta_model,
    train_epoch,
)
from course_lib.models import SimpleCNN
from course_lib.tools.launch import exit_process, free_port
from course_lib.training import evaluate

MODEL = {"channels": (32, 64), "hidden": 321}  # notebook 05's model (odd width: FSDP pads); --out: SimpleCNN(**MODEL)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (see the module docstring); values are validated in ``main``."""
    parser = argparse.ArgumentParser(description="Train SimpleCNN on the digits with FSDP.")
    parser.add_argument("--epochs", type=int, default=3, help="epochs in all, resumed ones included (default 3)")
    parser.add_argument("--max-steps", type=int, default=None, help="at most this many steps per epoch (a quick check)")
    parser.add_argument("--global-batch-size", type=int, default=96, help="summed over all ranks (default 96)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0, help="model initialisation and data order")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="save a sharded DCP checkpoint (model, optimizer, epoch) in DIR/epoch-N after each epoch")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --checkpoint-dir, on any number of ranks")
    parser.add_argument("--out", type=Path, default=None,
                        help="where rank 0 saves the full state dict (default outputs/checkpoints/simple_cnn_fsdp.pt)")
    parser.add_argument("--metrics-json", type=Path, default=None,
                        help="also write world size, losses, final loss and test accuracy here")
    return parser


def check_options(args: argparse.Namespace, world_size: int, n_train: int) -> tuple[Path, int] | None:
    """Refuse bad options (``ValueError``) before any rank starts; return the checkpoint to resume from, if any."""
    check_int("epochs", args.epochs, min_value=1)
    if args.max_steps is not None:
        check_int("max_steps", args.max_steps, min_value=1)
    check_int("global_batch_size", args.global_batch_size, min_value=world_size, max_value=n_train)
    if args.global_batch_size % world_size:
        raise ValueError(f"global_batch_size must be divisible by world_size ({world_size}), "
                         f"got {args.global_batch_size}")
    check_float("lr", args.lr, min_value=0.0, min_inclusive=False)
    check_int("seed", args.seed, min_value=0)
    if not args.resume:
        if args.checkpoint_dir and checkpoint_epochs(args.checkpoint_dir):
            raise ValueError(f"--checkpoint-dir {args.checkpoint_dir} already holds checkpoints: "
                             "add --resume to continue them, or choose an empty directory")
        return None
    if args.checkpoint_dir is None:
        raise ValueError("--resume expects --checkpoint-dir DIR, the directory of an earlier run's checkpoints")
    try:
        with torch.device("meta"):  # shapes only: what the checkpoint must hold
            path, epoch = latest_checkpoint(args.checkpoint_dir, SimpleCNN(**MODEL))
    except ValueError as exc:
        raise ValueError(f"--resume: {exc}") from None
    if epoch >= args.epochs:
        raise ValueError(f"--resume: {path} has trained {epoch} epochs already; expected --epochs > {epoch}")
    return path, epoch


def train(args: argparse.Namespace, device: torch.device, resume: tuple[Path, int] | None, out: Path,
          data: tuple[torch.Tensor, ...]) -> None:
    """Build, shard and initialise the model, resume if asked, train ``args.epochs``, save; rank 0 prints."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    X_train, y_train, X_test, y_test = (t.to(device) for t in data)
    loader = rank_batches(X_train, y_train, args.global_batch_size, rank, world_size, args.seed)
    with torch.device("meta"):  # shapes only, no memory
        model = SimpleCNN(**MODEL)
    shard_meta_model(model, device)  # fully_shard per block, then the root; this rank's shards, uninitialised
    torch.manual_seed(args.seed)
    load_full_state_dict(model, SimpleCNN(**MODEL).state_dict() if rank == 0 else {})  # rank 0's seeded weights
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)  # after sharding: it holds the shards
    first_epoch = load_checkpoint(resume[0], model, optimizer) + 1 if resume else 1
    if rank == 0:
        print(f"World size: {world_size}; FSDP units: {', '.join(fsdp_units(model))}; global batch "
              f"{args.global_batch_size} = {world_size} x {args.global_batch_size // world_size}"
              + (f"; resumed from {display_path(resume[0])}" if resume else ""))

    losses = []
    for epoch in range(first_epoch, args.epochs + 1):
        loader.sampler.set_epoch(epoch - 1)  # the same order on any number of ranks, resumed or not
        epoch_losses = train_epoch(model, optimizer, loader, device, args.max_steps)
        test_accuracy = evaluate(model, X_test, y_test)[1]
        losses += epoch_losses.tolist()
        if args.checkpoint_dir:
            checkpoint = save_checkpoint(args.checkpoint_dir, model, optimizer, epoch)
        if rank == 0:
            print(f"Epoch {epoch}/{args.epochs}, Loss: {epoch_losses.mean():.4f}, Test Accuracy: {test_accuracy:.2%}"
                  + (f", checkpoint {display_path(checkpoint)}" if args.checkpoint_dir else ""))

    state = gather_full_state_dict(model)  # a collective: every rank takes part, rank 0 gets the tensors
    if rank == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, out)
        print(f"Model saved to {display_path(out)}")
        if args.metrics_json:
            metrics = {"world_size": world_size, "first_epoch": first_epoch, "final_loss": losses[-1],
                       "losses": losses, "test_accuracy": test_accuracy}
            args.metrics_json.parent.mkdir(parents=True, exist_ok=True)
            args.metrics_json.write_text(json.dumps(metrics, indent=1))
        print(f"Test Accuracy: {test_accuracy:.2%}")


@record  # under torchrun, a failing rank's traceback becomes the reported root cause
def main(argv: list[str] | None = None) -> int:
    """Train, evaluate, checkpoint and save; return the exit status (bad options exit with status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if "MASTER_ADDR" not in os.environ:  # started without torchrun: a group of one, as torchrun would describe it
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
    data = digits_split().tensors()  # X_train, y_train, X_test, y_test
    try:
        resume = check_options(args, int(os.environ["WORLD_SIZE"]), len(data[0]))
    except ValueError as exc:
        parser.error(str(exc))  # exit status 2 with the usage line, before anything is written
    out = args.out or output_dir("checkpoints") / "simple_cnn_fsdp.pt"

    device = setup_process_group()  # a collective that waits over 60 s raises instead of hanging
    try:
        train(args, device, resume, out, data)
    finally:
        dist.destroy_process_group()  # also when training fails: the caller's process is left without a group
    return 0


if __name__ == "__main__":
    # exit_process skips interpreter shutdown, which can race with a gloo thread; main returns None after --help
    # (record turns SystemExit(0) into a return)
    exit_process(main() or 0)
