"""`duge-lora bench`: the continual benchmark, methods x requests, with its report."""
from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from duge_lora.bench import prepare_dir, run_bench
from duge_lora.bench_config import DEFAULT_ABLATION, MAX_SCENE_FRACTION, METHODS, SEQUENCES, BenchConfig, check_config, runs_of
from duge_lora.bench_results import collect
from duge_lora.errors import DugeError
from duge_lora.models import pick_device, resolve_base, resolve_precision
from duge_lora.report import fmt, summary_rows, write_report

from . import common
from .common import BaseOpt, DeviceOpt, JsonOpt, JudgeOpt, OverwriteOpt, PrecisionOpt, err, note
from .output import Output

EXAMPLES = """

Examples:

  duge-lora bench -o bench-default                     (6 methods x 10 requests + ablation; duge and uce x 3 seeds)

  duge-lora bench --sequence dependent -o bench-dependent   (the second sequence: every request depends on an earlier one)

  duge-lora bench --quick -o bench-quick               (3 requests, fewer steps and images: a few minutes)

  duge-lora bench --methods duge,uce --sequence circle,red --ablation none -o small

An interrupted bench resumes when the same command is run again, so a long bench can be run in parts (stop it
with Ctrl-C, run the same command later). Each request's anchor is resolved against the requests before it.
"""


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def bench_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the results, plots, grids and index.html.", show_default=False)],
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated methods.")] = ",".join(METHODS),
    sequence: Annotated[Optional[str], typer.Option("--sequence", help=f"{', '.join(SEQUENCES)} (default and dependent: 10 requests each; scale: 15), or comma-separated concepts erased in this order (default: default).")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help=f"Comma-separated seeds for the --seeded methods, averaged with their spread; the others and the ablation run the first (default: {','.join(map(str, BenchConfig.seeds))}; --quick: 0).")] = None,
    seeded: Annotated[str, typer.Option("--seeded", help="Comma-separated methods that run every seed.")] = ",".join(BenchConfig.seeded),
    ablation: Annotated[Optional[str], typer.Option("--ablation", help=f"DUGE variants to run ({', '.join(DEFAULT_ABLATION)}), 'all' or 'none' (default: all; --quick: none).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="3 requests, 40 steps, a quarter of the scenes, no ablation: a smoke test in minutes.")] = False,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help=f"Training steps per request (default {BenchConfig.steps}; --quick {BenchConfig.quick().steps}).")] = None,
    images: Annotated[Optional[int], typer.Option("--images", min=1, help=f"Evaluation images per prompt (default {BenchConfig.images}).")] = None,
    scene_fraction: Annotated[Optional[int], typer.Option("--scene-fraction", help=f"Judge 1/N of the toy world's scenes, balanced over every axis (default {BenchConfig.scene_fraction}; --quick {BenchConfig.quick().scene_fraction}; at most {MAX_SCENE_FRACTION}).")] = None,
    workers: Annotated[Optional[int], typer.Option("--num-processes", "--workers", min=1, help="Processes running chains in parallel, on accelerate (default: 2 on a CPU with 2+ cores, 1 on a GPU).")] = None,
    attack_steps: Annotated[int, typer.Option("--attack-steps", min=0, help="Budget of the concept-recovery attack run on each method after the last request (textual-inversion steps; 0: no attack).")] = BenchConfig.attack_steps,
    attack_every_step: Annotated[bool, typer.Option("--attack-every-step", help="Attack after every request, not only after the last.")] = False,
    base: BaseOpt = "toy",
    judge: JudgeOpt = None,
    device: DeviceOpt = "auto",
    mixed_precision: PrecisionOpt = "auto",
    overwrite: OverwriteOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Erase the same sequence of concepts with every method and measure each step against the base.

    Per method and step: UA, UA_prev, mean UA, IRA, CRA, erosion, FD, seconds and peak memory; the stack after
    each step is composed with compose's library API. Writes results.json, results.md, plots/, grids/ and
    index.html into the output folder.
    """
    import torch

    overrides = _overrides(methods, sequence, seeds, seeded, ablation, steps, images, scene_fraction, base)
    resolve_precision(mixed_precision, pick_device(device))
    resolve_base(base)                          # a base that cannot load fails here, before any folder is made
    overrides |= {"base": base, "judge": judge, "device": device, "mixed_precision": mixed_precision,
                  "attack_steps": attack_steps, "attack_every_step": attack_every_step}
    if base != "toy" and sequence is None:
        raise DugeError(f"A bench on {base!r} needs the concepts to erase: the default sequences are the toy world's.",
                        'Pass --sequence "van gogh,snoopy,church" (erased in this order).', option="sequence")
    cfg = BenchConfig.quick(**overrides) if quick else BenchConfig(**overrides)
    check_config(cfg)
    resuming = prepare_dir(output, cfg, overwrite)
    if workers is None:
        workers = 1 if torch.cuda.is_available() else min(2, os.cpu_count() or 1)
    runs = runs_of(cfg)
    note(f"bench: {len(runs)} runs ({', '.join(r.key for r in runs)}) x {len(cfg.sequence)} requests "
         f"({' -> '.join(cfg.sequence)}), {cfg.steps} steps each, {workers} worker(s)"
         + ("; resuming the finished steps in " + str(output) if resuming else ""))
    t0 = time.time()
    _run_with_progress(cfg, output, workers, quiet=json_)
    command = "duge-lora " + " ".join(shlex.quote(a) for a in (common.ARGV or ["bench"]))   # as typed (main.py)
    results = collect(cfg, output, command)
    results["wall_seconds"] = round(time.time() - t0, 1)
    results["workers"] = workers
    results["resumed"] = resuming                # wall_seconds is then this run's, not the whole bench's
    paths = write_report(output, results)
    Output(json_).show({"output": str(output), "wall_seconds": results["wall_seconds"],
                        "final": {name: row for name, row in summary_rows(results)},
                        "files": {k: str(v) for k, v in paths.items()}}, _summary(results))
    if not json_:
        note(f"wrote {paths['html']} (open it in a browser), {paths['markdown']} and {paths['json']} "
             f"in {results['wall_seconds']:.0f} s" + (" (this run only: the steps finished before were kept)" if resuming else ""))


def _overrides(methods: str, sequence, seeds, seeded: str, ablation, steps, images, scene_fraction, base: str) -> dict:
    """The BenchConfig fields the options set (the others keep the full bench's or --quick's values)."""
    overrides: dict = {"seeded": _csv(seeded)}
    if seeds is not None:
        try:
            overrides["seeds"] = tuple(int(s) for s in _csv(seeds))
        except ValueError:
            raise DugeError(f"--seeds {seeds!r} is not a comma-separated list of integers.", "Write it like --seeds 0,1.", option="seeds") from None
    overrides["methods"] = _csv(methods) if methods.strip().lower() != "none" else ()
    if sequence is not None:
        overrides["sequence"] = SEQUENCES.get(sequence.strip().lower()) or tuple(c.lower() for c in _csv(sequence))
    if ablation is not None:
        overrides["ablation"] = () if ablation == "none" else DEFAULT_ABLATION if ablation == "all" else _csv(ablation)
    if steps is not None:
        overrides["steps"] = steps
    if images is not None:
        overrides["images"] = images
    if scene_fraction is not None:
        if base != "toy":
            raise DugeError("--scene-fraction is for the toy world's scenes; a real base judges each request's "
                            "templates.", "Leave --scene-fraction out on a real base.", option="scene_fraction")
        overrides["scene_fraction"] = scene_fraction
    return overrides


def _run_with_progress(cfg: BenchConfig, output: Path, workers: int, quiet: bool) -> None:
    columns = [TextColumn("[bold]{task.description:22}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    n = len(cfg.sequence)
    with Progress(*columns, console=err, disable=quiet) as bar:
        overall = bar.add_task("all runs", total=len(runs_of(cfg)) * n, info="")
        tasks: dict[str, int] = {}
        finished: set[tuple[str, int]] = set()

        def report(msg: dict) -> None:
            run = msg["run"]
            if run not in tasks:
                tasks[run] = bar.add_task(run, total=1 if run == "base" else n, info="")
            if run == "base":                 # judged first; the attack's ceiling after the chains
                info = {"done": "done", "judged": "judged (the attack's ceiling comes last)"}.get(
                    msg["stage"], f"{msg['stage']} {msg['done']}/{msg['total']}")
                bar.update(tasks[run], completed=1, info=info)
                return
            if msg["stage"] == "done":
                finished.add((run, msg["step"]))
                bar.update(tasks[run], completed=sum(1 for r, _ in finished if r == run),
                           info=f"request {msg['step']}/{n} done")
                bar.update(overall, completed=len(finished))
            else:
                bar.update(tasks[run], info=f"request {msg['step']}/{n} {cfg.sequence[msg['step'] - 1] if msg['step'] else ''}: "
                                             f"{msg['stage']} {msg['done']}/{msg['total']}")
        run_bench(cfg, output, workers, report)


def _summary(results: dict) -> Table:
    n = len(results["sequence"])
    table = Table(title=f"after request {n} ({' -> '.join(results['sequence'])})")
    for col in ("method", "mean UA", "UA_prev", "IRA", "CRA", "erosion", "FD", "recovered", "s/request"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, r in summary_rows(results):
        table.add_row(name, *(fmt(r[k], True, r["sd"].get(k)) for k in ("mean_ua", "ua_prev", "ira", "cra", "erosion")),
                      fmt(r["fd"], False, r["sd"].get("fd")), fmt(r.get("recovered"), True, r["sd"].get("recovered")),
                      f"{r['total_seconds'] / n:.1f}")
    return table


bench_command.__doc__ += EXAMPLES
