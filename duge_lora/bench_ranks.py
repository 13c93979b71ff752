"""The bench's chains spread over processes on accelerate: rank_main(DIR) in every rank (the process entry point is
`python -m duge_lora_cli.ranks bench DIR`: the library neither prints nor exits).

The launcher (workers.run_all) starts N ranks with torch's launcher environment (distributed.start_ranks); each
rank (accelerate's PartialState) reads the bench's settings from DIR/bench.json and goes down the longest-first
list of runs, claiming the next unclaimed one (an exclusive create of DIR/.progress/claims/RUN), as a pool's idle
worker would, and runs its chain (bench.run_chain, one torch thread share each). The attack's ceiling on the base
(one job per seed, read only by the report) comes after every chain, so it fills a rank that finished early.
Chains are independent and seeded, so the results do not depend on N. Progress goes to DIR/.progress/rank-R.jsonl,
which the launcher reads for its progress bars; a failure's one sentence to DIR/.progress/rank-R.error.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

PROGRESS = ".progress"


def progress_file(out: Path, rank: int) -> Path:
    return out / PROGRESS / f"rank-{rank}.jsonl"


def error_file(out: Path, rank: int) -> Path:
    return out / PROGRESS / f"rank-{rank}.error"


def claim(out: Path, key: str) -> bool:
    """True for the one rank that claims the job `key` first (a chain's Run.key, or a seed's ceiling): an exclusive
    create, atomic on a local file system."""
    folder = out / PROGRESS / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(folder / key.replace("/", "~"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def rank_main(out: Path) -> int:
    from accelerate import PartialState

    from .bench import STATE_FILE, ceiling, run_chain
    from .bench_config import BenchConfig, runs_of
    from .distributed import thread_share
    from .errors import DugeError

    state = PartialState(cpu=True)
    rank, world = state.process_index, state.num_processes
    cfg = BenchConfig.from_dict(json.loads((out / STATE_FILE).read_text())["config"])
    threads = thread_share(world)
    progress_file(out, rank).parent.mkdir(exist_ok=True)
    with open(progress_file(out, rank), "a", encoding="utf-8") as log:
        def report(msg: dict) -> None:
            log.write(json.dumps(msg) + "\n")
            log.flush()

        try:
            for run in runs_of(cfg):
                if claim(out, run.key):
                    run_chain(run, cfg, out, threads, report)
            for seed in cfg.used_seeds():         # the attack's ceiling last: it fills a rank that finished early
                if claim(out, f"base/ceiling-{seed}"):
                    ceiling(cfg, out, seed, report)
        except KeyboardInterrupt:
            return 130
        except DugeError as exc:
            error_file(out, rank).write_text(str(exc))
            return 1
    return 0

