"""pytest configuration shared by unit tests and nbval: the same kernel environment as the runner."""

from __future__ import annotations

import os

import pytest

from course_lib.runner import KERNEL_ENV

os.environ.update(KERNEL_ENV)  # nbval's kernels inherit this: no tqdm bars, fixed hash seed
collect_ignore_glob = ["notebooks/.*.ipynb"]  # a runner's temporary file while it executes a notebook


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (stress tests)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
