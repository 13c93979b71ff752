"""The benchmark's report: results.json, results.md (a table per metric), PNG plots, image grids, index.html.

Input is what bench.collect() returns; pictures of generations come from the probe images each step kept.
Plots use matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from . import report_attack
from .io import atomic_path

# metric -> (title, "higher is better"?, shown in percent?)
METRICS = {
    "ua": ("UA, current target", True, True),
    "mean_ua": ("mean UA, all targets so far", True, True),
    "ua_prev": ("UA_prev, earlier targets", True, True),
    "ira": ("IRA, in-domain retain", True, True),
    "cra": ("CRA, cross-domain retain", True, True),
    "erosion": ("erosion (points lost on non-target prompts)", False, True),
    "fd": ("FD vs base (judge features, non-target prompts)", False, False),
    "seconds": ("seconds per request", False, False),
    "peak_mb": ("peak memory per request (MB)", False, False),
}
ABLATION_COLUMNS = ("mean_ua", "ira", "cra", "erosion", "fd", "seconds")


def fmt(value, percent: bool, sd: float | None = None) -> str:
    """A figure as shown in the tables (percent with one decimal), with its spread over seeds when there is one."""
    if value is None:
        return "-"
    text = f"{100 * value:.1f}" if percent else (f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}")
    return text if sd is None else f"{text} ± {fmt(sd, percent)}"


def _step_table(results: dict, metric: str) -> list[str]:
    title, _, pct = METRICS[metric]
    steps = results["sequence"]
    lines = [f"### {title}" + (" (%)" if pct else ""), "",
             "| method | " + " | ".join(f"{k} {c}" for k, c in enumerate(steps, 1)) + " |",
             "|---|" + "---:|" * len(steps)]
    for name, entry in results["methods"].items():
        by_step = {r["step"]: r for r in entry["steps"]}
        lines.append(f"| {name} | " + " | ".join(fmt(by_step.get(k, {}).get(metric), pct) for k in range(1, len(steps) + 1)) + " |")
    return lines + [""]


def _final(steps: list[dict], last: int) -> dict | None:
    """The judged row of request `last` (ablation variants are judged only there), or None."""
    return next((r for r in steps if r["step"] == last and "mean_ua" in r), None)


def _ablation_table(results: dict) -> list[str]:
    last = len(results["sequence"])
    rows = {"duge (all terms)": results["methods"].get("duge", {}).get("steps", [])} | \
           {name: e["steps"] for name, e in results["ablation"].items()}
    lines = [f"### Ablation: DUGE without one term, after request {last}", "",
             "| variant | " + " | ".join(METRICS[c][0].split(",")[0].split(" (")[0] for c in ABLATION_COLUMNS) + " |",
             "|---|" + "---:|" * len(ABLATION_COLUMNS)]
    for name, steps in rows.items():
        final = _final(steps, last)
        if final is None:
            continue
        final = final | {"seconds": sum(r.get("seconds") or 0 for r in steps) / max(1, len(steps))}
        lines.append(f"| {name} | " + " | ".join(fmt(final.get(c), METRICS[c][2]) for c in ABLATION_COLUMNS) + " |")
    return lines + [""]


def summary_rows(results: dict) -> list[tuple[str, dict]]:
    """Each method's last judged step (the numbers the issue's floors talk about)."""
    last = len(results["sequence"])
    out = []
    for name, entry in results["methods"].items():
        final = _final(entry["steps"], last)
        if final:
            total = sum(r.get("seconds") or 0 for r in entry["steps"])
            out.append((name, final | {"total_seconds": total, "sd": entry.get("sd") or {}, "seeds": entry.get("seeds", [])}))
    return out


def _target_table(results: dict) -> list[str]:
    """Every target's UA at the end of each chain (mean ± sd over the method's seeds)."""
    concepts = list(results["sequence"])
    lines = [f"## Every target's UA after request {len(concepts)} (%)", "",
             "| method | seeds | " + " | ".join(concepts) + " |", "|---|---:|" + "---:|" * len(concepts)]
    for name, r in summary_rows(results):
        ua = {t["concept"]: t["ua"] for t in r.get("targets", [])}
        sd = r["sd"].get("targets", {})
        lines.append(f"| {name} | {len(r['seeds']) or 1} | " + " | ".join(fmt(ua.get(c), True, sd.get(c)) for c in concepts) + " |")
    return lines + [""]


def markdown(results: dict) -> str:
    m, base = results["machine"], results["base"]
    acc = ", ".join(f"{a} {fmt(v, True)}%" for a, v in base["accuracy"].items())
    lines = ["# duge-lora bench", "",
             f"- command: `{results['command']}`", f"- date: {results['date']}",
             f"- machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu'] or 'none'}, torch {m['torch']}",
             f"- sequence: {' -> '.join(results['sequence'])}",
             f"- base (step 0) judge accuracy: {acc}", "",
             "All figures in percent except FD, seconds and MB. erosion = accuracy on prompts that show no target so far, "
             "base minus step k (same prompts, same seeds).", "",
             f"## After request {len(results['sequence'])}", "",
             "With several seeds: the mean ± the standard deviation over seeds.", "",
             "| method | seeds | mean UA | UA_prev | IRA | CRA | erosion | FD | recovered | s/request (mean) | total s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    n = len(results["sequence"])
    for name, r in summary_rows(results):
        cells = [fmt(r.get(k), k != "fd", r["sd"].get(k)) for k in ("mean_ua", "ua_prev", "ira", "cra", "erosion", "fd", "recovered")]
        lines.append(f"| {name} | {len(r['seeds']) or 1} | " + " | ".join(cells) + f" | {r['total_seconds'] / n:.1f} | {r['total_seconds']:.0f} |")
    lines += [""] + _target_table(results) + report_attack.markdown_lines(results) + ["## Per step", ""]
    if any(len(e.get("seeds", [])) > 1 for e in results["methods"].values()):
        lines += ["Before the last request only a method's first seed is judged; the last request's figures are "
                  "the mean over all its seeds.", ""]
    for metric in METRICS:
        lines += _step_table(results, metric)
    if results["ablation"]:
        lines += ["## Ablation", ""] + _ablation_table(results)
    return "\n".join(lines) + "\n"


def plots(results: dict, folder: Path) -> list[Path]:
    """One PNG per metric (metric vs step, one line per method), plus overview.png with them all."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    steps = results["sequence"]
    labels = [f"{k}\n{c}" for k, c in enumerate(steps, 1)]
    paths = []

    def draw(ax, metric):
        title, _, pct = METRICS[metric]
        for name, entry in results["methods"].items():
            pts = [(r["step"], r[metric]) for r in entry["steps"] if r.get(metric) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, [100 * y if pct else y for y in ys], marker="o", ms=3, label=name,
                        lw=2.4 if name == "duge" else 1.3)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(1, len(steps) + 1), labels, fontsize=7)
        ax.grid(alpha=0.3)

    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(7, 4))
        draw(ax, metric)
        if ax.lines:
            ax.legend(fontsize=8)
        else:                               # e.g. UA_prev in a one-request bench
            ax.text(0.5, 0.5, "no step of this bench has this figure", ha="center", va="center", transform=ax.transAxes)
        path = folder / f"{metric}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    shown = ("mean_ua", "ua_prev", "ira", "cra", "erosion", "fd")
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, metric in zip(axes.flat, shown):
        draw(ax, metric)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"duge-lora bench, {results['date'][:10]}", fontsize=12)
    path = folder / "overview.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [path] + paths


def grids(out: Path, results: dict, folder: Path) -> list[Path]:
    """Per method: rows = probe prompts, columns = step 0 (base) .. K (from each step's kept probe images)."""
    from .bench import base_file, load_base_verdicts, run_folder
    from .bench_config import BenchConfig, eval_scenes, probe_rows
    from .generate import grid

    folder.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig.from_dict(results["config"])
    seed = cfg.seeds[0]
    kept, info = load_base_verdicts(out, seed), json.loads(base_file(out, seed).with_suffix(".json").read_text())
    if "probe" in kept:                                    # bench_measure keeps the probe rows and their labels
        base_probe, row_labels = kept["probe"], info["probe_labels"]
    else:                                                  # a toy bench folder written before it did
        rows, scenes = probe_rows(cfg), eval_scenes(cfg)
        base_probe, row_labels = kept["images"][[r * cfg.images for r in rows]], [scenes[r].prompt() for r in rows]
    paths = []
    for name in list(results["methods"]) + list(results["ablation"]):
        cols, col_labels = [base_probe], ["base"]
        for k, concept in enumerate(results["sequence"], 1):
            f = run_folder(out, name, seed) / f"probe-{k:02d}.npy"
            if f.exists():
                cols.append(np.load(f))
                col_labels.append(f"{k} -{concept}")
        img = grid(np.stack(cols, axis=1), row_labels, col_labels=col_labels)
        path = folder / f"{name}.png"
        with atomic_path(path) as tmp:
            img.save(tmp, format="PNG")
        paths.append(path)
    return paths


def index_html(results: dict, md: str, plot_paths: list[Path], grid_paths: list[Path], out: Path) -> str:
    """One page with the summary table, the plots and every method's grid."""
    def table(lines: list[str]) -> str:
        rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if not ln.startswith("|---")]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    parts, block = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            parts.append(table(block))
            block = []
        if line.startswith("#"):
            level = min(4, line.count("#", 0, line.index(" ")) + 1)
            parts.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("- "):
            parts.append(f"<p class=meta>{html.escape(line[2:])}</p>")
        elif line.strip():
            parts.append(f"<p>{html.escape(line)}</p>")
    if block:
        parts.append(table(block))
    rel = lambda p: html.escape(str(p.relative_to(out)))  # noqa: E731
    pics = "".join(f'<figure><img src="{rel(p)}"><figcaption>{html.escape(p.stem)}</figcaption></figure>' for p in plot_paths[1:])
    grid_html = "".join(f'<h3>{html.escape(p.stem)}</h3><img class=grid src="{rel(p)}">' for p in grid_paths)
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
             "figure{display:inline-block;margin:4px}figure img{width:440px}.meta{margin:2px 0;color:#444}"
             "img.grid{max-width:100%;image-rendering:pixelated}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>duge-lora bench</title><style>{style}</style></head><body>"
            f'<img src="{rel(plot_paths[0])}" style="max-width:100%">' + "".join(parts)
            + f"<h2>Plots</h2>{pics}<h2>Generations (rows: prompts; columns: after each request)</h2>{grid_html}</body></html>")


def write_report(out: Path, results: dict) -> dict[str, Path]:
    """Write every report file into `out`; returns their paths by kind."""
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1))
    md = markdown(results)
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(md)
    plot_paths = plots(results, out / "plots")
    plot_paths += [p for p in [report_attack.plot(results, out / "plots")] if p is not None]
    grid_paths = grids(out, results, out / "grids")
    grid_paths += [p for p in [report_attack.grid(out, results, out / "grids")] if p is not None]
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(index_html(results, md, plot_paths, grid_paths, out))
    return {"json": out / "results.json", "markdown": out / "results.md", "html": out / "index.html",
            "plots": out / "plots", "grids": out / "grids"}
