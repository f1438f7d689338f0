"""Helpers for the tests that start processes: what they may leave behind, and comparing state dicts."""

from __future__ import annotations

import socket

import psutil
import torch


def leftover_processes() -> list[psutil.Process]:
    """Live descendants of this test process, except multiprocessing's own resource tracker."""
    return [p for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())]


def port_is_free(port: int) -> bool:
    """Whether a new rendezvous server could bind ``port`` on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a new rendezvous server would bind
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest absolute difference between two state dicts with the same keys."""
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)
