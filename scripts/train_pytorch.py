#!/usr/bin/env python
"""Train the SimpleCNN on scikit-learn's 8x8 digits with PyTorch, on a GPU when there is one.

    python scripts/train_pytorch.py [--epochs N] [--batch-size B] [--device auto] [--seed S] [--out PATH]

Prints the device, one line per epoch and the test accuracy, saves the weights (default under
outputs/checkpoints/) and checks that they reload with torch.load(..., weights_only=True).
The model, data and training loop live in course_lib (models, data, training).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_lib import check_float, check_int, output_dir, setup
from course_lib.data import digits_split
from course_lib.env import display_path
from course_lib.memory import count_parameters
from course_lib.models import SimpleCNN
from course_lib.timing import limit_cpu_threads
from course_lib.training import evaluate, fit_torch, save_and_reload


def build_parser() -> argparse.ArgumentParser:
    """Command-line options; values are validated in ``main``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="passes over the training set (default 12)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per SGD step (default 32)")
    parser.add_argument("--lr", type=float, default=0.02, help="learning rate (default 0.02, momentum 0.9)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights, the split and the batch order")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to save the weights (default outputs/checkpoints/simple_cnn.pt)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate, save and reload; return the exit status (bad options exit with status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_int("--epochs", args.epochs, min_value=1)
        check_int("--batch-size", args.batch_size, min_value=1)
        check_float("--lr", args.lr, min_value=0.0, min_inclusive=False)
        if args.threads is not None:
            limit_cpu_threads(check_int("--threads", args.threads, min_value=1))
        device = setup(args.seed, args.device)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"device: {device}")

    split = digits_split(seed=args.seed)
    model = SimpleCNN().to(device)
    print(f"training SimpleCNN ({count_parameters(model):,} parameters) on "
          f"{len(split.X_train)} digits, testing on {len(split.X_test)}")
    fit_torch(model, split, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    X_test, y_test = split.tensors(device)[2:]
    test_accuracy = evaluate(model, X_test, y_test)[1]
    print(f"test accuracy: {test_accuracy:.2%}")

    out = args.out if args.out is not None else output_dir("checkpoints") / "simple_cnn.pt"
    reloaded = save_and_reload(model, out, SimpleCNN().to(device))
    print(f"saved weights to {display_path(out)}")
    print(f"reloaded with torch.load(..., weights_only=True): test accuracy "
          f"{evaluate(reloaded, X_test, y_test)[1]:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
