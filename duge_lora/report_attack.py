"""The concept-recovery attack in the bench's report (bench_attack.py): a section of results.md, a bar chart
(plots/recovered.png: each method's recovered share after the last request, with its spread over seeds, against
the ceiling on the base), and a grid of attacked images (grids/attacked.png: rows = the base, then each method;
columns = the targets)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import atomic_path


def _last_attacked(entry: dict, last: int) -> dict | None:
    return next((r for r in entry["steps"] if r["step"] == last and r.get("recovered") is not None), None)


def rows(results: dict) -> list[tuple[str, dict, dict]]:
    """(method, its last request's row, its spread) for every method attacked after the last request."""
    last = len(results["sequence"])
    out = []
    for name, entry in results["methods"].items():
        row = _last_attacked(entry, last)
        if row is not None:
            out.append((name, row, entry.get("sd") or {}))
    return out


def markdown_lines(results: dict) -> list[str]:
    """'## Concept recovery' with the ceiling and every method's recovered share, per target; [] without an attack."""
    from .report import fmt

    got = rows(results)
    if not got:
        return []
    base, concepts = results["base"], list(results["sequence"])
    ceiling = base.get("ceiling_targets", {})
    lines = [f"## Concept recovery: the attack after request {len(concepts)} (%)", "",
             f"Textual inversion into the erased model ({base.get('attack_steps', results['config'].get('attack_steps'))} "
             "steps, 2 new tokens, from the base's images of each target; Pham et al. 2023), then every scene of the "
             "target drawn with the learned word: the share the judge reads as the target. Lower is better; the "
             "ceiling is the same attack on the base. With several seeds: mean ± sd over seeds.", "",
             "| model | seeds | mean | " + " | ".join(concepts) + " |", "|---|---:|---:|" + "---:|" * len(concepts)]
    if ceiling:
        lines.append(f"| base (ceiling) | {len(results['config'].get('seeds', [0]))} | "
                     f"{fmt(base.get('ceiling'), True, base.get('ceiling_sd'))} | "
                     + " | ".join(fmt(ceiling.get(c), True) for c in concepts) + " |")
    for name, row, sd in got:
        per, per_sd = row.get("recovered_targets", {}), sd.get("recovered_targets", {})
        seeds = row.get("attacked_seeds", 1)
        lines.append(f"| {name} | {seeds} | {fmt(row['recovered'], True, sd.get('recovered'))} | "
                     + " | ".join(fmt(per.get(c), True, per_sd.get(c)) for c in concepts) + " |")
    return lines + [""] + _per_step(results)


def _per_step(results: dict) -> list[str]:
    """With attack_every_step: each method's recovered share (mean over the targets so far) after each request."""
    from .report import fmt

    concepts = list(results["sequence"])
    by = {n: {r["step"]: r.get("recovered") for r in e["steps"]} for n, e in results["methods"].items()}
    if not any(v is not None for steps in by.values() for k, v in steps.items() if k < len(concepts)):
        return []
    lines = ["### Recovered after each request (mean over the targets so far, %)", "",
             "| method | " + " | ".join(f"{k} {c}" for k, c in enumerate(concepts, 1)) + " |",
             "|---|" + "---:|" * len(concepts)]
    for name, steps in by.items():
        lines.append(f"| {name} | " + " | ".join(fmt(steps.get(k), True) for k in range(1, len(concepts) + 1)) + " |")
    return lines + [""]


def plot(results: dict, folder: Path) -> Path | None:
    """plots/recovered.png: a bar per method (mean over seeds, the spread as an error bar), the ceiling dashed."""
    got = rows(results)
    if not got:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    names = [n for n, _, _ in got]
    vals = [100 * r["recovered"] for _, r, _ in got]
    errs = [100 * (sd.get("recovered") or 0) for _, _, sd in got]
    ax.bar(names, vals, yerr=errs, capsize=4, color=["#c0392b" if n == "duge" else "#7f8c8d" for n in names])
    if results["base"].get("ceiling") is not None:
        ax.axhline(100 * results["base"]["ceiling"], ls="--", color="black", lw=1, label="ceiling (attack on the base)")
        ax.legend(fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("recovered (%)")
    ax.set_title(f"Concept recovery after request {len(results['sequence'])} (lower is better)", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    path = folder / "recovered.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def grid(out: Path, results: dict, folder: Path) -> Path | None:
    """grids/attacked.png: the first attacked image of every target, for the base (the ceiling) and each method."""
    from .bench import run_folder
    from .bench_attack import ceiling_file
    from .bench_config import BenchConfig
    from .generate import grid as tile

    cfg = BenchConfig.from_dict(results["config"])
    seed, last = cfg.seeds[0], len(cfg.sequence)
    images, labels = [], []
    base = ceiling_file(out, seed).with_suffix(".npy")
    if base.exists():
        images.append(np.load(base))
        labels.append("base (ceiling)")
    for name, _, _ in rows(results):
        f = run_folder(out, name, seed) / f"attack-{last:02d}.npy"
        if f.exists():
            images.append(np.load(f))
            labels.append(name)
    if not images:
        return None
    img = tile(np.stack(images), labels, col_labels=list(cfg.sequence))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "attacked.png"
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
