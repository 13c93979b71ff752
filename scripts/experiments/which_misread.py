"""Which of the bench's own images a stack misreads, as run for docs/benchmarks.md "How much of the erosion is the
bench's draw": the stack 1..k of a run, judged with the bench's seed and one image per prompt (bench_measure), and
every image of a scene that shows no target where the judge was right on the base and is wrong now, per axis.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python scripts/experiments/which_misread.py RUN_DIR SEQUENCE SEED METHOD 6,7

RUN_DIR is a bench output (base/seed-SEED.npz, runs/METHOD/seed-SEED/NN-concept/). Not a test and not a benchmark
command."""
import sys
from pathlib import Path

import numpy as np
import torch

from duge_lora.bench_config import SEQUENCES, BenchConfig, chain_requests, eval_scenes
from duge_lora.compose import apply_to_base
from duge_lora.evaluate import sample_eval
from duge_lora.metrics import axis_mask, non_target_mask, per_axis_accuracy
from duge_lora.models import load_base

torch.set_num_threads(1)
out, seq, seed, method = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
cfg = BenchConfig(sequence=SEQUENCES[seq])
reqs, sc = chain_requests(cfg.sequence), eval_scenes(cfg)
base = np.load(out / "base" / f"seed-{seed}.npz")
folder = out / "runs" / method / f"seed-{seed}"
for k in (int(s) for s in sys.argv[5].split(",")):
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and "." not in p.name)[:k]
    model = load_base("toy", "cpu")
    apply_to_base(model, [str(folder / n) for n in names])
    s = sample_eval(model, cfg.images, seed, reqs[:k], sc, features=False)
    canon = ~s.synonym
    scenes = [x for x, c in zip(s.scenes, canon) if c]
    keep = non_target_mask(scenes, np.zeros(len(scenes), bool), [(r.axis, r.concept) for r in reqs[:k]])
    now = {a: h[canon] for a, h in s.hits.items()}
    then = {a: base[f"hit_{a}"] for a in now}
    print(k, names[-1], "stack", per_axis_accuracy(scenes, now, keep), "base", per_axis_accuracy(scenes, then, keep))
    for a in now:
        for i in np.where(keep & axis_mask(scenes, a) & then[a] & ~now[a])[0]:
            print("   misread", a, "in", repr(scenes[i].prompt()))
