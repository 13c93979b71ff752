"""How precise is the bench's erosion at the end of a chain? As run for docs/benchmarks.md "How much of the erosion
is the bench's draw". The bench judges one image per prompt, and after ten requests its erosion rests on the 30
scenes that show no target. This script draws N fresh images of each of those scenes (seeds 5000 + the run's seed,
not the bench's), from the base and from a run's stack 1..STEP, and gives:
- the erosion on all N images (the same definition as the bench: base minus stack, mean over axes of the judge's
  accuracy on the kept scenes; metrics.erosion), with a 95% bootstrap interval over scenes (paired);
- the erosion of each single-image draw j = 0..N-1 alone: what the bench's one-image figure would have been with
  another noise draw (mean, sd, min, max over the N draws).

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python scripts/experiments/erosion_precision.py RUN_DIR SEQUENCE SEED METHOD STEP N [SWAP]

RUN_DIR is a bench output (runs/METHOD/seed-SEED/NN-concept/); SWAP (optional) names a folder to use instead of
request STEP's (e.g. 10-yellow.preset, erosion_guard.py's first training). Not a test and not a benchmark command."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from duge_lora.bench_config import SEQUENCES, BenchConfig, chain_requests, eval_scenes
from duge_lora.compose import apply_to_base
from duge_lora.evaluate import default_judge
from duge_lora.generate import generate
from duge_lora.metrics import axis_mask, non_target_mask
from duge_lora.models import load_base
from duge_lora.toy import world
from duge_lora.toy.judge import correct

torch.set_num_threads(1)
run_dir, seq, seed, method, step, n = sys.argv[1:7]
seed, step, n = int(seed), int(step), int(n)
swap = sys.argv[7] if len(sys.argv) > 7 else None
cfg = BenchConfig(sequence=SEQUENCES[seq])
reqs = chain_requests(cfg.sequence)[:step]
sc = eval_scenes(cfg)
scenes = [s for s, m in zip(sc, non_target_mask(sc, np.zeros(len(sc), bool), [(r.axis, r.concept) for r in reqs])) if m]
folder = Path(run_dir) / "runs" / method / f"seed-{seed}"
names = sorted(p.name for p in folder.iterdir() if p.is_dir() and "." not in p.name)[:step]
if swap:
    names[-1] = swap


def hits(adapters) -> dict[str, np.ndarray]:
    """Per axis, (scenes, n) booleans: the judge right on that axis (an axis a scene lacks is masked by erosion())."""
    model = load_base("toy", "cpu")
    if adapters:
        apply_to_base(model, [str(folder / a) for a in adapters])
    images = generate(model, [s.prompt() for s in scenes], n, 5000 + seed)
    ok = correct(default_judge(), images.reshape(-1, *images.shape[2:]), [s for s in scenes for _ in range(n)])
    return {a: np.asarray(ok[a]).reshape(len(scenes), n) for a in world.AXES}


def erosion(base, stack, rows, cols) -> float:
    """metrics.erosion on the chosen scenes (rows) and draws (cols): mean over axes of base minus stack accuracy."""
    diffs = []
    for a in world.AXES:
        m = axis_mask(scenes, a)[rows]
        if m.any():
            diffs.append(base[a][rows][m][:, cols].mean() - stack[a][rows][m][:, cols].mean())
    return float(np.mean(diffs))


base, stack = hits([]), hits(names)
all_rows, all_cols = np.arange(len(scenes)), np.arange(n)
rng = np.random.default_rng(0)
boot = [erosion(base, stack, rng.choice(all_rows, len(all_rows)), all_cols) for _ in range(2000)]
single = [erosion(base, stack, all_rows, [j]) for j in range(n)]
per_axis = {a: round(float(stack[a][axis_mask(scenes, a)].mean() - base[a][axis_mask(scenes, a)].mean()), 4)
            for a in world.AXES if axis_mask(scenes, a).any()}
print(json.dumps({"run": str(folder), "stack": names, "scenes": len(scenes), "images": n,
                  "erosion": round(100 * erosion(base, stack, all_rows, all_cols), 2),
                  "interval_95": [round(100 * float(np.percentile(boot, q)), 2) for q in (2.5, 97.5)],
                  "single_draw": {"mean": round(100 * float(np.mean(single)), 2), "sd": round(100 * float(np.std(single)), 2),
                                  "min": round(100 * min(single), 2), "max": round(100 * max(single), 2)},
                  "accuracy_change_per_axis": per_axis}))
