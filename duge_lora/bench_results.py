"""The bench's results.json content: per method and ablation variant, the per-step results (mean over seeds),
the base's figures (step 0), the command, the machine and the date (report.py renders them)."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

from .bench import base_file, now, run_folder
from .bench_attack import ceiling_file
from .bench_config import BenchConfig, runs_of

def collect(cfg: BenchConfig, out: Path, command: str = "") -> dict:
    """results.json's content: per method and ablation variant, the per-step results (mean over its seeds; with
    several seeds also `per_seed` and, for the last step, the spread `sd` of each figure)."""
    base = [json.loads(base_file(out, s).with_suffix(".json").read_text()) for s in cfg.used_seeds()]
    results: dict = {"methods": {}, "ablation": {}, "base": _mean_base(base), "sequence": list(cfg.sequence),
                     "config": cfg.to_dict(), "command": command, "date": now(), "machine": machine()}
    ceilings = [json.loads(f.read_text()) for f in (ceiling_file(out, s) for s in cfg.used_seeds()) if f.exists()]
    if ceilings:
        results["base"] |= _mean_ceiling(ceilings)
    for r in runs_of(cfg):
        seeds = cfg.seeds[:1] if r.variant else cfg.seeds_of(r.method)
        if r.seed != seeds[0]:
            continue
        per_seed = [_steps(run_folder(out, r.name, s), len(cfg.sequence)) for s in seeds]
        entry = {"steps": _mean_steps(per_seed), "seeds": list(seeds)}
        if len(seeds) > 1:
            entry["per_seed"] = per_seed
            entry["sd"] = _spread([steps[-1] for steps in per_seed if steps])
        (results["ablation"] if r.variant else results["methods"])[r.name] = entry
    return results


def _steps(folder: Path, n: int) -> list[dict]:
    return [json.loads((folder / f"step-{k:02d}.json").read_text()) for k in range(1, n + 1)
            if (folder / f"step-{k:02d}.json").exists()]


NUMERIC = ("ua", "ua_prev", "mean_ua", "ira", "cra", "erosion", "fd", "seconds", "peak_mb", "compose_seconds",
           "compose_max_abs_diff", "eval_seconds", "clip_score", "recovered", "attack_seconds")


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _mean_steps(per_seed: list[list[dict]]) -> list[dict]:
    """Step k over the seeds: the mean of each figure and of each target's UA, over the seeds judged at step k
    (`judged_seeds`: before the last request only the first seed is judged, see bench_config.runs_of)."""
    if len(per_seed) == 1:
        return per_seed[0]
    out = []
    for rows in zip(*per_seed):
        judged = [r for r in rows if "mean_ua" in r]
        row = dict(judged[0] if judged else rows[0]) | {k: _mean([r.get(k) for r in rows]) for k in NUMERIC}
        if judged and judged[0].get("targets"):
            row["targets"] = [t | {"ua": _mean([r["targets"][j]["ua"] for r in judged])}
                              for j, t in enumerate(judged[0]["targets"])]
        row["judged_seeds"] = len(judged)
        attacked = [r["recovered_targets"] for r in rows if r.get("recovered_targets")]
        if attacked:
            row["recovered_targets"] = {c: _mean([a.get(c) for a in attacked]) for c in attacked[0]}
            row["attacked_seeds"] = len(attacked)
        out.append(row)
    return out


def _spread(finals: list[dict]) -> dict:
    """The sample standard deviation over seeds of each figure of the last step, and of each target's UA."""
    sd = lambda vals: float(np.std(vals, ddof=1)) if len(vals) > 1 else None  # noqa: E731
    spread = {k: sd([f[k] for f in finals if f.get(k) is not None]) for k in NUMERIC}
    if finals and finals[0].get("targets"):
        spread["targets"] = {t["concept"]: sd([f["targets"][j]["ua"] for f in finals if f["targets"][j]["ua"] is not None])
                             for j, t in enumerate(finals[0]["targets"])}
    if finals and finals[0].get("recovered_targets"):
        spread["recovered_targets"] = {c: sd([f["recovered_targets"][c] for f in finals if f.get("recovered_targets")])
                                       for c in finals[0]["recovered_targets"]}
    return spread


def _mean_ceiling(infos: list[dict]) -> dict:
    """The attack on the base, over the seeds: the mean share per target and overall, and its spread."""
    sd = float(np.std([i["ceiling"] for i in infos], ddof=1)) if len(infos) > 1 else None
    return {"ceiling": _mean([i["ceiling"] for i in infos]), "ceiling_sd": sd, "attack_steps": infos[0]["steps"],
            "ceiling_targets": {c: _mean([i["ceiling_targets"][c] for i in infos]) for c in infos[0]["ceiling_targets"]}}


def _mean_base(infos: list[dict]) -> dict:
    acc = {a: _mean([i["accuracy"][a] for i in infos]) for a in infos[0]["accuracy"]}
    targets = [{"concept": t["concept"], "axis": t["axis"],
                "ua": _mean([i["targets"][j]["ua"] for i in infos])} for j, t in enumerate(infos[0]["targets"])]
    return {"accuracy": acc, "targets": targets, "images": infos[0]["images"]}


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "python": platform.python_version()}
