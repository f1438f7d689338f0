#!/usr/bin/env python
"""Train the SimpleCNN on scikit-learn's 8x8 digits with PyTorch, on a GPU when there is one.

    python scripts/train_pytorch.py [--epochs N] [--batch-size B] [--device auto] [--seed S] [--out PATH]

Prints the device, one line per epoch and the test accuracy, saves the weights (default under
outputs/checkpoints/) and checks that they reload with torch.load(..., weights_only=True).
The model, the data and the two loop bodies (train_one_epoch, evaluate) come from course_lib; the
loss, the optimizer and the loop over epochs are here, in the shape of pytorch/examples' mnist/main.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from course_lib import check_float, check_int, display_path, limit_cpu_threads, output_dir, setup
from course_lib.data import digits_split, minibatches
from course_lib.memory import count_parameters
from course_lib.models import SimpleCNN
from course_lib.training import evaluate, train_one_epoch


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
    X_train, y_train, X_test, y_test = split.tensors(device)
    model = SimpleCNN().to(device)
    print(f"training SimpleCNN ({count_parameters(model):,} parameters) on "
          f"{len(X_train)} digits, testing on {len(X_test)}")
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    rng = np.random.default_rng(args.seed)  # the batch order
    for epoch in range(1, args.epochs + 1):
        loss = train_one_epoch(model, minibatches(X_train, y_train, args.batch_size, rng), loss_fn, optimizer, device)
        train_accuracy = evaluate(model, X_train, y_train)[1]
        test_accuracy = evaluate(model, X_test, y_test)[1]
        print(f"epoch {epoch}/{args.epochs}  loss {loss:.4f}  train accuracy {train_accuracy:.2%}  "
              f"test accuracy {test_accuracy:.2%}")
    print(f"test accuracy: {test_accuracy:.2%}")

    out = args.out if args.out is not None else output_dir("checkpoints") / "simple_cnn.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    print(f"saved weights to {display_path(out)}")
    reloaded = SimpleCNN().to(device)
    reloaded.load_state_dict(torch.load(out, map_location=device, weights_only=True))
    print(f"reloaded with torch.load(..., weights_only=True): test accuracy "
          f"{evaluate(reloaded, X_test, y_test)[1]:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
