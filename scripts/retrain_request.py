"""Retrain requests K..L of one bench run with other DUGE settings, on top of that run's own adapters 1..K-1.

The experiments behind docs/benchmarks.md "What moved the numbers" (2026-11-29, second session): a request that
failed in a full bench is retrained alone, on exactly the adapters the bench gave it, and judged the way the
bench judges (bench.run_chain), in about a minute instead of an hour. With --upto the chain goes on from there
(e.g. --request 1 --upto 10: a whole DUGE-only chain with the new settings).

  HF_HUB_OFFLINE=1 .venv/bin/python scripts/retrain_request.py --bench out/bench --request 10 \
      --weight overlap=0 --weight drift=0 --weight ca_eps=10 -o out/retrain

Writes OUT/runs/NAME/seed-0/ like a bench run (adapters, step-NN.json) and prints one line per judged request.
"""
from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from duge_lora.bench import run_chain, run_folder
from duge_lora.bench_config import BenchConfig, Run
from duge_lora.losses import DEFAULT_WEIGHTS


@dataclass(frozen=True)
class Variant(Run):
    """A DUGE run whose loss weights are the defaults with some overridden."""
    overrides: tuple[tuple[str, float], ...] = ()

    def weights(self) -> dict:
        return {**DEFAULT_WEIGHTS, **dict(self.overrides)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", type=Path, required=True, help="a finished bench folder (its base verdicts and the run's adapters are reused)")
    ap.add_argument("--run", default="duge", help="the bench run whose adapters 1..K-1 are the starting point")
    ap.add_argument("--request", type=int, required=True, help="K: the first request to retrain (1-based)")
    ap.add_argument("--upto", type=int, default=None, help="L: the last request to retrain (default K)")
    ap.add_argument("--weight", action="append", default=[], help="NAME=VALUE, a DUGE loss weight")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--name", default=None, help="the variant's run name (default: from the options)")
    ap.add_argument("-o", "--output", type=Path, required=True)
    a = ap.parse_args(argv)

    state = json.loads((a.bench / "bench.json").read_text())
    cfg = BenchConfig.from_dict(state["config"])
    k, last = a.request, a.upto or a.request
    if not 1 <= k <= last <= len(cfg.sequence):
        sys.exit(f"--request/--upto must lie in 1..{len(cfg.sequence)} with K <= L.")
    try:
        overrides = tuple((n, float(v)) for n, v in (w.split("=", 1) for w in a.weight))
    except ValueError:
        sys.exit("Write each --weight as NAME=NUMBER, e.g. --weight ca_eps=3.")
    cfg = BenchConfig.from_dict(cfg.to_dict() | {"sequence": list(cfg.sequence[:last]), "methods": [], "ablation": []}
                                | ({"steps": a.steps} if a.steps else {}))
    name = a.name or "-".join([a.run, f"k{k}"] + [f"{n}{v:g}" for n, v in overrides]
                              + ([f"steps{a.steps}"] if a.steps else []) + ([f"lr{a.lr:g}"] if a.lr else []))
    if a.lr:                                   # run_chain builds its TrainConfig from duge_lora.train at call time
        import duge_lora.train as train
        train.TrainConfig = functools.partial(train.TrainConfig, lr=a.lr)

    a.output.mkdir(parents=True, exist_ok=True)
    if not (a.output / "base").exists():
        shutil.copytree(a.bench / "base", a.output / "base")
    src, dst = run_folder(a.bench, a.run, 0), run_folder(a.output, name, 0)
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):            # adapters NN-concept/, step-NN.json, probe-NN.npy of requests < K
        num = int(f.name[:2]) if f.name[:2].isdigit() else int(f.stem.split("-")[-1])
        if num < k:
            (shutil.copytree if f.is_dir() else shutil.copy)(f, dst / f.name)
    rows = run_chain(Variant(name, "duge", 0, overrides=overrides), cfg, a.output, threads=1)
    for r in rows[k - 1:]:
        print(f"{name} request {r['step']} {r['target']}: UA {100 * r['ua']:.1f} mean UA {100 * r['mean_ua']:.1f} "
              f"IRA {100 * r['ira']:.1f} CRA {100 * r['cra']:.1f} erosion {100 * r['erosion']:.1f} FD {r['fd']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
