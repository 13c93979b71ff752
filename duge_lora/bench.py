"""The continual benchmark: every method erases the same sequence of requests, measured after each one.

shared/design/toyworld.md, "The continual benchmark"; metrics as in method.md. For each run (a method, or a DUGE
variant of the ablation) and each seed, request k is trained on top of the run's adapters 1..k-1 (train.py),
the stack 1..k is composed with compose's library API (apply_to_base: the same sum `duge-lora compose` writes)
and judged (evaluate.py): UA, UA_prev, IRA, CRA, erosion and FD against the base (step 0).

On disk, everything a run produced stays in DIR/runs/NAME/seed-S/ (adapters NN-concept/, results step-NN.json,
probe images probe-NN.npy), so an interrupted bench resumes where it stopped. report.py turns the collected
results into results.json/md, plots, grids and index.html. Runs are independent chains, so they are spread over
worker processes (one torch thread each on a 2-core CPU is faster in total than two threads in one process).
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .bench_attack import attack_step, measure_ceiling, wanted
from .bench_config import ROBUST, BenchConfig, Run, chain_requests, runs_of
from .errors import BenchInterrupted, OutputError, TrainingStopped, UsageError, param, signal_code
from .io import atomic_path
from .stack import slug
from .workers import run_all

STATE_FILE = "bench.json"
Report = Callable[[dict], None]


# ----------------------------------------------------------------------------- the base (step 0)
def run_folder(out: Path, name: str, seed: int) -> Path:
    """Where one run keeps its adapters NN-concept/, step-NN.json and probe-NN.npy."""
    return out / "runs" / name / f"seed-{seed}"


def base_file(out: Path, seed: int) -> Path:
    return out / "base" / f"seed-{seed}.npz"


def measure_base(cfg: BenchConfig, out: Path, seed: int) -> dict:
    """Judge the base once per seed (with every target's synonyms); keep its verdicts and features for erosion/FD."""
    from .bench_measure import measure_for
    from .models import load_base

    path = base_file(out, seed)
    if path.exists() and path.with_suffix(".json").exists():
        return json.loads(path.with_suffix(".json").read_text())
    t0 = time.time()
    arrays, info = measure_for(cfg).base_arrays(load_base(cfg.base, cfg.device, mixed_precision=cfg.mixed_precision), seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    info = {"seed": seed} | info | {"seconds": round(time.time() - t0, 1)}
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    return info


def load_base_verdicts(out: Path, seed: int) -> dict[str, np.ndarray]:
    with np.load(base_file(out, seed)) as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------- one step of one run
def _train_config(run: Run, cfg: BenchConfig, precision: str):
    """How request k of `run` is trained: the bench's steps and data, the run's method and seed (duge-robust: the
    adversarial preset)."""
    from .train import TrainConfig

    tcfg = TrainConfig(method="duge" if run.method == ROBUST else run.method, steps=cfg.steps, seed=run.seed,
                       weights=run.weights(), mixed_precision=precision, max_prompts=cfg.max_prompts,
                       checkpoint_every=max(10, cfg.steps // 4))
    if run.method == ROBUST:
        from .adversarial import robust_preset
        tcfg = robust_preset(tcfg)
    return tcfg


def _train_request(run: Run, cfg: BenchConfig, out: Path, req, adapters: list[Path], adapter: Path, say) -> tuple:
    """Train request k on the run's adapters 1..k-1 (or read it back): (record, the model training ended with)."""
    from .compose import Item, apply_items
    from .models import load_base, resolve_precision
    from .records import resolve_adapter, resolve_adapters
    from .train import train_adapter

    if (adapter / "duge.json").exists():
        return resolve_adapter(adapter).record, None
    trainee = load_base(cfg.base, cfg.device, mixed_precision=cfg.mixed_precision)
    tcfg = _train_config(run, cfg, resolve_precision(cfg.mixed_precision, trainee.device))
    record = train_adapter(trainee, req, resolve_adapters(adapters), tcfg, adapter, resume=True, cache=out / "cache",
                           progress=lambda stage, d, t, info: say(stage, d, t))
    if run.method == "uce":            # closed form: theta_{k-1} is merged, merge adapter k the same way
        apply_items(trainee, [Item(resolve_adapter(adapter))], record.base.fingerprint)
    return record, trainee.pipe.unet.eval()


def check_finished(cfg: BenchConfig, out: Path) -> None:
    """A resumed bench reuses every finished adapter as it is. Refuse one whose duge.json records other training
    settings than this version gives its run (an earlier version's preset, say), so that no chain mixes the two."""
    from .records import AdapterRecord
    from .train_record import comparable_settings

    for run in runs_of(cfg):
        want = comparable_settings(_train_config(run, cfg, "no"))
        for k, concept in enumerate(cfg.sequence, 1):
            f = run_folder(out, run.name, run.seed) / f"{k:02d}-{slug(concept)}" / "duge.json"
            if not f.exists():
                continue
            have = comparable_settings(AdapterRecord.from_dict(json.loads(f.read_text())))
            changed = sorted(key for key in want.keys() | have.keys() if want.get(key) != have.get(key))
            if changed:
                raise UsageError(f"{f.parent} was trained with other settings ({', '.join(changed)}) than this version "
                                 f"of duge-lora gives {run.key}, so resuming would mix the two in one chain.",
                                 f"Pass {param('overwrite')} to start over, or use another {param('output')}.")


def _judge_step(measure, run: Run, composed, reqs: list, base: dict, folder: Path, k: int, say) -> dict:
    """Judge the composed stack 1..k (bench_measure); keep the probe rows' images for the grids."""
    t0 = time.time()
    row, probe_images = measure.step(composed, reqs, run.seed, base, progress=lambda d, t: say("judge", d, t))
    row |= {"eval_seconds": round(time.time() - t0, 1)}
    with atomic_path(folder / f"probe-{k:02d}.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, probe_images)
    return row


def _step(run: Run, cfg: BenchConfig, out: Path, k: int, reqs: list, adapters: list[Path], base: dict, measure,
          report) -> dict:
    """Request k of a run: train it, compose 1..k (compose's sum, in memory), check and judge the result."""
    from .compose import apply_to_base
    from .models import load_base
    from .verify import probe

    folder = run_folder(out, run.name, run.seed)
    say = lambda stage, d, t, info=None: report({"run": run.key, "step": k, "stage": stage, "done": d, "total": t})  # noqa: E731
    record, live = _train_request(run, cfg, out, reqs[-1], adapters[:-1], adapters[-1], say)
    row: dict = {"step": k, "target": reqs[-1].concept, "seconds": record.seconds, "peak_mb": record.peak_mb,
                 "data_cached": record.data.get("cached")}
    say("compose", 0, 1)
    composed = load_base(cfg.base, cfg.device, mixed_precision=cfg.mixed_precision)
    t0 = time.time()
    apply_to_base(composed, [str(a) for a in adapters])
    row["compose_seconds"] = round(time.time() - t0, 3)
    if live is not None:                     # the composed stack vs the model training ended with
        row["compose_max_abs_diff"] = float((probe(composed.pipe.unet) - probe(live)).abs().max())
    if run.every_step or k == len(cfg.sequence):
        row |= _judge_step(measure, run, composed, reqs, base, folder, k, say)
    if wanted(cfg, run, k):                  # last: the attack changes the composed model's text encoder
        row |= attack_step(cfg, out, run, composed, reqs, folder, k, say, measure.judge)
    return row


def run_chain(run: Run, cfg: BenchConfig, out: Path, threads: int = 0, report: Report | None = None) -> list[dict]:
    """Train, compose and judge request 1..K of one run, skipping what a previous attempt finished."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    report = report or (lambda msg: None)
    folder = run_folder(out, run.name, run.seed)
    folder.mkdir(parents=True, exist_ok=True)
    from .bench_measure import measure_for

    base = load_base_verdicts(out, run.seed)
    measure = measure_for(cfg)
    chain, adapters, results = chain_requests(cfg.sequence, cfg.base), [], []
    for k, concept in enumerate(cfg.sequence, 1):
        reqs = chain[:k]
        adapters.append(folder / f"{k:02d}-{slug(concept)}")
        result_file = folder / f"step-{k:02d}.json"
        if result_file.exists():
            results.append(json.loads(result_file.read_text()))
        else:
            results.append(_step(run, cfg, out, k, reqs, adapters, base, measure, report))
            with atomic_path(result_file) as tmp:
                tmp.write_text(json.dumps(results[-1], indent=2))
        report({"run": run.key, "step": k, "stage": "done", "done": 1, "total": 1})
    return results


# ----------------------------------------------------------------------------- the whole bench
def prepare_dir(out: Path, cfg: BenchConfig, overwrite: bool) -> bool:
    """Create DIR, or check that it holds this same bench (then the run resumes). Returns True when resuming."""
    import shutil

    state = out / STATE_FILE
    if out.exists() and overwrite:
        if not state.exists() and any(out.iterdir()):
            raise OutputError(f"{out} is not a bench folder (no {STATE_FILE}), so {param('overwrite')} will not delete it.",
                            f"Choose a new folder for {param('output')}.")
        shutil.rmtree(out)
    if state.exists():
        old = json.loads(state.read_text())["config"]
        if old != cfg.to_dict():
            changed = sorted(k for k in set(old) | set(cfg.to_dict()) if old.get(k) != cfg.to_dict().get(k))
            raise UsageError(f"{out} holds a bench with other settings ({', '.join(changed)}).",
                            f"Rerun with the same options to resume it, pass {param('overwrite')} to start over, or use another {param('output')}.")
        return True
    if out.exists() and any(out.iterdir()):
        raise OutputError(f"{out} exists and is not a bench folder.", f"Choose a new or empty folder for {param('output')}.")
    if not out.parent.is_dir():
        raise OutputError(f"Cannot write {out}: the folder {out.parent} does not exist.", f"Create it first (mkdir -p {out.parent}).")
    out.mkdir(exist_ok=True)
    with atomic_path(state) as tmp:
        tmp.write_text(json.dumps({"config": cfg.to_dict(), "started": now()}, indent=2))
    return False


def run_bench(cfg: BenchConfig, out: Path, workers: int = 1, report: Report | None = None) -> None:
    """Every run of the bench, spread over `workers` processes (1: in this process)."""
    report = report or (lambda msg: None)
    check_finished(cfg, out)
    for seed in cfg.used_seeds():
        report({"run": "base", "step": 0, "stage": "judge", "done": 0, "total": 1})
        measure_base(cfg, out, seed)
        report({"run": "base", "step": 0, "stage": "done" if not cfg.attack_steps else "judged", "done": 1, "total": 1})
    try:
        run_all(run_chain, runs_of(cfg), cfg, out, workers, report)
        for seed in cfg.used_seeds():       # what the ranks did not measure (in one process: all of it)
            ceiling(cfg, out, seed, report)
    except (KeyboardInterrupt, TrainingStopped) as exc:
        if isinstance(exc, TrainingStopped) and not exc.interrupted:
            raise
        stop = BenchInterrupted(f"The bench was interrupted; the finished steps are kept in {out}.",
                                "Rerun the same command to resume where it stopped.")
        stop.code = signal_code(exc) if isinstance(exc, KeyboardInterrupt) else (exc.signal_code or stop.code)
        raise stop from None


def ceiling(cfg: BenchConfig, out: Path, seed: int, report: Report) -> None:
    """The attack on the base for one seed (bench_attack.measure_ceiling; kept, so a second call reads it)."""
    measure_ceiling(cfg, out, seed, lambda stage, d, t: report({"run": "base", "step": 0, "stage": "attack",
                                                                "done": d, "total": t}))
    report({"run": "base", "step": 0, "stage": "done", "done": 1, "total": 1})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


