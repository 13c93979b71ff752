"""Run independent chains of the bench in worker processes (spawned, one torch thread share each).

On a 2-core CPU two processes with one thread each do more work than one process with two threads (measured:
one thread is 1.3x slower per process than two). Progress messages come back through a queue; an error in one
chain stops the rest, and Ctrl-C stops the workers at once (each keeps its last checkpoint).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .errors import DugeError

Report = Callable[[dict], None]


def _in_worker(chain, run, cfg, out: str, threads: int, queue) -> dict:
    """Process-pool entry point: errors come back as text (exception classes with extra fields do not pickle)."""
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        chain(run, cfg, Path(out), threads, queue.put)
        return {"run": run.key}
    except KeyboardInterrupt:
        return {"run": run.key, "error": "interrupted"}
    except DugeError as exc:
        return {"run": run.key, "error": str(exc)}


def _drain(queue, report: Report) -> None:
    import queue as queue_mod

    while True:
        try:
            report(queue.get_nowait())
        except queue_mod.Empty:
            return


def _stop(pool) -> None:
    # a Ctrl-C in a terminal reaches the workers too, a SIGINT sent to this process alone does not:
    # stop them either way, and do not wait for their chains
    for proc in list(getattr(pool, "_processes", {}).values()):
        proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def run_all(chain, runs: list, cfg, out: Path, workers: int, report: Report) -> None:
    """chain(run, cfg, out, threads, report) for every run, in `workers` processes (1: in this process)."""
    if workers <= 1:
        for r in runs:
            chain(r, cfg, out, 0, report)
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    threads = max(1, (os.cpu_count() or 2) // workers)
    with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        q = manager.Queue()
        pending = {pool.submit(_in_worker, chain, r, cfg, str(out), threads, q) for r in runs}
        errors = []
        try:
            while pending and not errors:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                _drain(q, report)
                errors += [f.result()["error"] for f in done if "error" in f.result()]
            for f in pending:
                f.cancel()
        except KeyboardInterrupt:
            _stop(pool)
            raise
        if errors:
            raise DugeError(f"A run failed: {errors[0]}", "Fix the cause and rerun the same command; finished steps are kept.")
