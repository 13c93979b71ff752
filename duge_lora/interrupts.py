"""Interruptions at step boundaries: Ctrl-C or SIGTERM during a training step is held until the step ends.

A checkpoint is then always of whole steps (parameters, optimizer moments and the data RNG agree), so resuming
gives the uninterrupted run's adapter bit for bit (docs/reliability.md). Outside the main thread, where signal
handlers cannot be set, interruptions arrive as usual.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from .errors import Terminated


@contextmanager
def step_boundaries() -> Iterator[Callable[[], None]]:
    """Yield check(): call it between steps; it raises the held KeyboardInterrupt (or Terminated for SIGTERM)."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    held: list[int] = []

    def hold(signum, frame):
        held.append(signum)

    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}

    def check() -> None:
        if held:
            raise Terminated() if held[0] == signal.SIGTERM else KeyboardInterrupt()
    try:
        yield check
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
