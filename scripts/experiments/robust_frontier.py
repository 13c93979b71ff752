"""Every robust variant's chain on one picture, as drawn for docs/benchmarks.md "Three more holds, the last
request's steps, and every robust variant on one picture": erosion against recovery after request 10, one point per chain, filled where the chain's lowest target is
erased in >= 90% of its images (the chain issue's floor), hollow where it is not.

    python scripts/experiments/robust_frontier.py collect EXP_DIR docs/bench-attack/variants.json
    python scripts/experiments/robust_frontier.py plot docs/bench-attack/variants.json docs/bench-attack/variants.png

`collect` reads the step-10.json of each experiment folder listed in VARIANTS under EXP_DIR (the bench outputs of
scripts/experiments/*.py) and EXP_DIR/precision.jsonl (erosion_precision.py: the erosion on 480 images of the chain's own ten adapters;
lines for a swapped last adapter, such as 10-yellow.purple, are other models and are skipped), and writes
the figures with the command that made each chain; the chains of an earlier OUT.json whose folders are not under
EXP_DIR are kept, so that a collect on a new EXP_DIR adds to it. `plot` draws them. Not a test and not a benchmark command."""
import itertools
import json
import sys
from pathlib import Path

# folder -> (label, experiment command's script and JSON, without the "bench" key: {"sequence": S, "seeds": [N]})
VARIANTS = {
    "guard-{seq}-s{seed}": ("guard (request's axis)", "erosion_guard.py {}"),
    "gk-{seq}-s{seed}": ("guard (every concept)", 'erosion_guard.py {"shown": "kept", "scope": "all", "drop": 2}'),
    "rank1-{seq}-s{seed}": ("rank 1", 'robust_rank.py {"rank": 1}'),
    "rank2-{seq}-s{seed}": ("rank 2", 'robust_rank.py {"rank": 2}'),
    "rank8-{seq}-s{seed}": ("rank 8", 'robust_rank.py {"rank": 8}'),
    "repair-{seq}-s{seed}": ("full repair", "repair_base.py {}"),
    "repair-mem8-{seq}-s{seed}": ("full repair + memory 8", 'repair_base.py {"memory": 8}'),
    "repair-noattn-{seq}-s{seed}": ("noise repair, ff everywhere", 'repair_base.py {"attn": 0}'),
    "replay-noattn-{seq}-s{seed}": ("noise repair, replay rows", 'repair_base.py {"attn": 0, "rows": "replay"}'),
    "r5-noattn-{seq}-s{seed}": ("noise repair, 5 rounds", 'repair_base.py {"attn": 0, "rounds": 5}'),
    "mem8-noattn-{seq}-s{seed}": ("noise repair + memory 8", 'repair_base.py {"attn": 0, "memory": 8}'),
    "clean-noattn-{seq}-s{seed}": ("noise repair, clean replay kept", 'repair_base.py {"attn": 0, "replay": "clean"}'),
    "own-{seq}-s{seed}": ("noise repair, clean replay, own pairs half",
                          'repair_base.py {"attn": 0, "replay": "clean", "own": 0.5}'),
    "far-{seq}-s{seed}": ("noise repair, anchor off the neighbours", 'repair_base.py {"attn": 0, "anchor": "far"}'),
    "fflow-{seq}-s{seed}": ("ff-low + noise repair: the preset of 2026-12-02 morning",
                            'repair_base.py {"attn": 0, "ff": "low"}'),
    "ffhigh-{seq}-s{seed}": ("noise repair, ff in the 3 full-res blocks", 'repair_base.py {"attn": 0, "ff": "high"}'),
    "fflowr5-{seq}-s{seed}": ("ff-low + repair, 5 rounds", 'repair_base.py {"attn": 0, "ff": "low", "rounds": 5}'),
    "cleanlow-{seq}-s{seed}": ("ff-low + repair + clean replay",
                               'repair_base.py {"attn": 0, "ff": "low", "replay": "clean"}'),
    "ownlow-{seq}-s{seed}": ("ff-low + repair + clean replay + own pairs half",
                             'repair_base.py {"attn": 0, "ff": "low", "replay": "clean", "own": 0.5}'),
    "own90-{seq}-s{seed}": ("ff-low + repair + clean replay + own pairs 0.9: the preset",
                            'repair_base.py {"attn": 0, "ff": "low", "replay": "clean", "own": 0.9}'),
}
# The preset on the default sequence: its chains' folders were not kept, so (erosion, recovered, lowest UA) per seed
# are docs/benchmarks.md's "The robust preset reaches the feed-forward output". Labels and commands of kept chains
# follow VARIANTS. On the dependent sequence the
# preset is read from its committed bench, DEPENDENT. Concept Ablation's recovery: the mean of seeds 0-2 (the full
# benches, seed 0; docs/bench-attack/ablate-*-seeds-1-2).
PRESET = {("default", 0): (3.3, 24.1, 75.0), ("default", 1): (10.6, 19.1, 87.5), ("default", 2): (3.3, 20.0, 89.3)}
ROOT = Path(__file__).resolve().parents[2]
DEPENDENT = ROOT / "docs" / "bench-attack" / "dependent-chain-fix" / "results.json"
ABLATE = {"default": 24.2, "dependent": 21.2}
PRESET_LABEL = "the preset until 2026-12-02"


def dependent_preset() -> list[dict]:
    runs = json.loads(DEPENDENT.read_text())["methods"]["duge-robust"]
    rows = []
    for seed, steps in zip(runs["seeds"], runs["per_seed"]):
        st = steps[-1]
        rows.append({"label": PRESET_LABEL, "sequence": "dependent", "seed": seed, "source": str(DEPENDENT.relative_to(ROOT)),
                     "erosion": round(100 * st["erosion"], 1), "recovered": round(100 * st["recovered"], 1),
                     "lowest_ua": round(100 * min(t["ua"] for t in st["targets"]), 1)})
    return rows


def collect(exp: Path, out: Path) -> None:
    prec = {}
    for line in (exp / "precision.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "." not in r["stack"][-1]:                    # RUN/runs/METHOD/seed-N -> RUN's folder name
            prec[Path(r["run"]).parents[2].name] = r
    rows = [{"label": PRESET_LABEL, "sequence": q, "seed": s, "erosion": e, "recovered": r, "lowest_ua": u,
             "source": "docs/benchmarks.md"} for (q, s), (e, r, u) in PRESET.items()] + dependent_preset()
    for pattern, (label, command) in VARIANTS.items():
        for seq in ("default", "dependent"):
            for seed in (0, 1, 2):
                name = pattern.format(seq=seq, seed=seed)
                f = exp / name / "runs" / "duge-robust" / f"seed-{seed}" / "step-10.json"
                if not f.exists():
                    continue
                st = json.loads(f.read_text())
                low = min(st["targets"], key=lambda t: t["ua"])
                p = prec.get(name)
                rows.append({"label": label, "sequence": seq, "seed": seed, "folder": name, "command": command,
                             "erosion": round(100 * st["erosion"], 1), "recovered": round(100 * st["recovered"], 1),
                             "lowest_ua": round(100 * low["ua"], 1), "lowest": low["concept"],
                             "mean_ua": round(100 * st["mean_ua"], 1),
                             **({"erosion_480": p["erosion"], "interval_95": p["interval_95"]} if p else {})})
    new = {r["folder"] for r in rows if "folder" in r}
    known = {p.format(seq=q, seed=n): v for p, v in VARIANTS.items() for q in ("default", "dependent") for n in (0, 1, 2)}
    if out.exists():                                     # chains collected earlier from folders no longer here: kept,
        rows += [r | dict(zip(("label", "command"), known.get(r["folder"], (r["label"], r.get("command")))))
                 for r in json.loads(out.read_text())["chains"] if "folder" in r and r["folder"] not in new]
    tmp = out.with_suffix(".tmp.json")                  # written whole, then moved: the old chains exist only here
    tmp.write_text(json.dumps({"ablate_recovered": ABLATE, "chains": rows}, indent=1) + "\n")
    tmp.replace(out)
    print(f"{len(rows)} chains -> {out}")


def plot(src: Path, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(src.read_text())
    labels = sorted({r["label"] for r in data["chains"]}, key=lambda x: (x != PRESET_LABEL, x))
    marks = dict(zip(labels, itertools.cycle("o s ^ v < > D p h * X P d 8 H".split())))   # filled shapes; colours differ
    colours = dict(zip(labels, plt.cm.tab20.colors + plt.cm.Dark2.colors))      # more labels than tab20 has colours
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.2), sharey=True)
    for ax, seq in zip(axes, ("default", "dependent")):
        for r in (r for r in data["chains"] if r["sequence"] == seq):
            ok = r["lowest_ua"] >= 90
            ax.scatter(r["recovered"], r["erosion"], marker=marks[r["label"]], s=70, edgecolors=colours[r["label"]],
                       facecolors=colours[r["label"]] if ok else "none", linewidths=1.6)
            if "erosion_480" in r:                       # the same chain judged on 480 images, with its interval
                lo, hi = r["interval_95"]
                ax.errorbar(r["recovered"] + 0.25, r["erosion_480"], yerr=[[r["erosion_480"] - lo], [hi - r["erosion_480"]]],
                            fmt="_", color=colours[r["label"]], ecolor=colours[r["label"]], alpha=0.7, capsize=2)
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.axvline(data["ablate_recovered"][seq], color="0.4", ls=":", lw=1.2)
        ax.text(data["ablate_recovered"][seq] - 0.2, ax.get_ylim()[1] * 0.97, "Concept Ablation's recovery (mean of 3 seeds)",
                fontsize=8, color="0.3", va="top", ha="right")
        ax.text(ax.get_xlim()[0] + 0.3, 1.15, "the chain's erosion ceiling (1 point)", fontsize=8)
        ax.set_title(f"{seq} sequence, after request 10")
        ax.set_xlabel("recovered by the attack (%), lower is harder to attack")
    axes[0].set_ylabel("erosion, points (the bench's; bars: 480 images, 95% interval)")
    fig.suptitle("Every robust variant's chain: one point per chain and seed", fontsize=11)
    handles = [plt.Line2D([], [], marker=marks[x], color=colours[x], ls="none", markersize=8, label=x) for x in labels]
    handles.append(plt.Line2D([], [], marker="o", color="0.3", markerfacecolor="none", ls="none",
                              label="hollow: a target under 90% UA"))
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(out)
    print(out)


if __name__ == "__main__":
    {"collect": collect, "plot": plot}[sys.argv[1]](Path(sys.argv[2]), Path(sys.argv[3]))
