"""Command line: ``python -m course_lib {check-env,run,learner-copy}``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def positive_int(text: str) -> int:
    """An argparse type: a whole number > 0."""
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all sub-commands."""
    parser = argparse.ArgumentParser(prog="python -m course_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check-env", help="one line per required package: [OK] or [FAIL]")

    run = sub.add_parser("run", help="execute notebooks with papermill and print a summary")
    run.add_argument("paths", nargs="*", default=["notebooks"], metavar="NOTEBOOK|DIR")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a value of the notebook's parameters cell (repeatable)")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--output-dir", default="build/executed",
                       help="write executed copies here (default: build/executed)")
    where.add_argument("--in-place", action="store_true", help="replace the notebooks themselves")
    run.add_argument("--timeout", type=positive_int, default=600, help="seconds allowed per cell (default 600)")
    run.add_argument("--jobs", "-j", type=positive_int, default=1, help="notebooks to run at once (default 1)")

    learner = sub.add_parser("learner-copy", help="write notebooks with exercise solutions removed")
    learner.add_argument("paths", nargs="*", default=["notebooks"], metavar="NOTEBOOK|DIR")
    learner.add_argument("--output-dir", default="build/learner", help="default: build/learner")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "check-env":
        from course_lib.tools.checkenv import main as check_env

        return check_env()
    from course_lib.tools.runner import find_notebooks, parse_value, run

    try:
        notebooks = find_notebooks(args.paths)
        if args.command == "learner-copy":
            from course_lib.tools.learner import write_learner_copies

            write_learner_copies(notebooks, Path(args.output_dir))
            return 0
        params = {name: parse_value(value) for name, value in args.parameter}
        results = run(notebooks, params, None if args.in_place else Path(args.output_dir), args.timeout, args.jobs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
