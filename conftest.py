"""pytest configuration: unit tests, and every notebook under strict nbval on several CPU kernel tiers.

Stored outputs must hold on any CPU, so each notebook is checked once per tier in ``--cpu-tiers``
(default ``native,sse``). A tier is a set of environment variables that makes torch, MKL, oneDNN,
OpenBLAS and NumPy pick the kernels of an older CPU, as PyTorch's own CI does; the notebook's kernel
starts with them. Items are named ``notebooks/NN_name.ipynb::TIER::Cell K``.

Written against nbval 0.11 (pinned): it overrides ``IPyNbFile.setup`` and reads nbval's options.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nbval.plugin import IPyNbFile

from course_lib.tools.runner import KERNEL_ENV

os.environ.update(KERNEL_ENV)  # nbval's kernels inherit this: no tqdm bars, fixed hash seed
collect_ignore_glob = ["notebooks/.*.ipynb"]  # a runner's temporary file while it executes a notebook

# NumPy chooses its own SIMD kernels at run time (X86_V3 = AVX2 + FMA, X86_V4 = AVX-512); NumPy 2.4 keeps its
# AVX512_ICL and AVX512_SPR targets when X86_V4 alone is disabled, so they are named too.
CPU_TIERS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": "X86_V4,AVX512_ICL,AVX512_SPR"},
    "sse": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
            "OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES": "X86_V4,X86_V3,AVX512_ICL,AVX512_SPR"},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (stress tests)")
    parser.addoption("--cpu-tiers", default="native,sse", metavar="TIER,...",
                     help=f"check the notebooks under these CPU kernel tiers (of {', '.join(CPU_TIERS)}); "
                          "default: native,sse")


def selected_tiers(config: pytest.Config) -> list[str]:
    """The tiers named by ``--cpu-tiers``, validated."""
    tiers = [t.strip() for t in config.getoption("--cpu-tiers").split(",") if t.strip()]
    unknown = [t for t in tiers if t not in CPU_TIERS]
    if unknown or not tiers:
        raise pytest.UsageError(f"--cpu-tiers takes a comma-separated list of {', '.join(CPU_TIERS)}, "
                                f"got {config.getoption('--cpu-tiers')!r}")
    return tiers


def pytest_configure(config: pytest.Config) -> None:
    selected_tiers(config)  # a wrong --cpu-tiers is a usage error before anything runs


class TierNotebook(IPyNbFile):
    """nbval's strict notebook collector, with its kernel started under one CPU tier's environment."""

    tier = "native"

    def setup(self) -> None:
        saved = dict(os.environ)
        for name in {name for tier in CPU_TIERS.values() for name in tier}:
            os.environ.pop(name, None)  # a tier exported in the caller's shell must not leak into "native"
        os.environ.update(CPU_TIERS[self.tier])
        try:
            super().setup()  # starts the kernel, which inherits os.environ
        finally:
            os.environ.clear()
            os.environ.update(saved)


class TieredNotebook(pytest.File):
    """One notebook file: a strict nbval collector per selected CPU tier."""

    def collect(self):
        for tier in selected_tiers(self.config):
            node = TierNotebook.from_parent(self, path=self.path, name=tier, nodeid=f"{self.nodeid}::{tier}")
            node.tier = tier
            yield node


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> TieredNotebook | None:
    if file_path.suffix != ".ipynb" or parent.config.option.nbval or parent.config.option.nbval_lax:
        return None  # with an explicit --nbval, nbval collects the notebooks itself (native tier only)
    return TieredNotebook.from_parent(parent, path=file_path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
