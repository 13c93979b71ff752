"""Run independent chains of the bench in several processes on accelerate (bench_ranks.py), one torch thread
share each.

On a 2-core CPU two processes with one thread each do more work than one process with two threads (measured:
one thread is 1.3x slower per process than two). Progress comes back through the ranks' progress files; an error
in one chain stops the rest, and Ctrl-C stops every rank (each keeps its finished steps and checkpoint).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from .errors import DugeError

Report = Callable[[dict], None]


def run_all(chain, runs: list, cfg, out: Path, workers: int, report: Report) -> None:
    """chain(run, cfg, out, threads, report) for every run: in this process (workers 1), or spread over `workers`
    processes on accelerate (bench_ranks.py; chain is then bench.run_chain, which every rank imports)."""
    if workers <= 1:
        for r in runs:
            chain(r, cfg, out, 0, report)
        return
    import shutil

    from .bench_ranks import PROGRESS, error_file, progress_file
    from .distributed import start_ranks, wait_ranks

    shutil.rmtree(out / PROGRESS, ignore_errors=True)
    (out / PROGRESS).mkdir()
    offsets = [0] * workers

    def tick() -> None:                    # forward the ranks' progress lines to `report`
        for rank in range(workers):
            f = progress_file(out, rank)
            if not f.exists():
                continue
            with open(f, "rb") as fh:
                fh.seek(offsets[rank])
                lines = fh.readlines()
                if lines and not lines[-1].endswith(b"\n"):     # a line still being written: next time
                    lines = lines[:-1]
                offsets[rank] += sum(len(ln) for ln in lines)
            for ln in lines:
                report(json.loads(ln))

    procs = start_ranks([str(out)], workers, entry=("-m", "duge_lora_cli.ranks", "bench"), quiet_all=True, omp_threads=False)
    _, code = wait_ranks(procs, tick)
    tick()
    errors = [error_file(out, r).read_text() for r in range(workers) if error_file(out, r).exists()]
    shutil.rmtree(out / PROGRESS, ignore_errors=True)
    if code == 130:
        raise KeyboardInterrupt
    if code or errors:
        raise DugeError(f"A run failed: {errors[0] if errors else f'a process exited with code {code}'}",
                        "Fix the cause and rerun the same command; finished steps are kept.")
