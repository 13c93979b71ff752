"""What a bench run's erosion is made of: per class, the toy judge's accuracy on the prompts that show no target,
the base against the composed stack 1..k, and what one concept's prompts are drawn as. As run for
docs/benchmarks.md "What erodes on seed 1".

    HF_HUB_OFFLINE=1 python scripts/experiments/what_erodes.py BENCH_DIR SEQUENCE SEED STEPS [METHOD] [--concept C]

BENCH_DIR is a bench's output folder (its runs/METHOD/seed-SEED/NN-concept adapters are composed with compose's
library API); STEPS is a comma list such as 9,10. Six images per prompt (seeds 100+SEED, not the bench's), so the
per-class figures rest on more images than the bench's one per prompt. Not a test and not a benchmark command.
"""
import argparse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from duge_lora.bench_config import SEQUENCES, BenchConfig, chain_requests
from duge_lora.bench_measure import eval_scenes
from duge_lora.compose import apply_to_base
from duge_lora.evaluate import default_judge, sample_eval
from duge_lora.generate import generate
from duge_lora.metrics import non_target_mask
from duge_lora.models import load_base
from duge_lora.toy import world
from duge_lora.toy.judge import predict

IMAGES = 6
SLOT = {"object": "subject", "color": "color", "style": "style"}
NAMES = {"object": world.OBJECTS, "color": world.COLORS, "style": world.STYLES}


def per_class(model, reqs, scenes, seed: int) -> dict:
    """(axis, class) -> the judge's hits on the non-target prompts' images of that class."""
    s = sample_eval(model, IMAGES, 100 + seed, reqs, scenes)
    canon = ~s.synonym
    sc = [x for x, c in zip(s.scenes, canon) if c]
    keep = non_target_mask(sc, np.zeros(len(sc), bool), [(r.axis, r.concept) for r in reqs])
    out = defaultdict(list)
    for i in np.where(keep)[0]:
        for axis, slot in SLOT.items():
            if axis == "object" and sc[i].kind != "object":
                continue
            out[(axis, getattr(sc[i], slot))].append(bool(s.hits[axis][canon][i]))
    return out


def drawn_as(model, concept: str, seed: int) -> dict:
    """What every world scene of `concept` is read as on its axis (2 images per scene)."""
    axis = world.axis_of(concept)
    scenes = [s for s in world.all_scenes() if getattr(s, SLOT.get(axis, axis)) == concept]
    images = generate(model, [s.prompt() for s in scenes], 2, 100 + seed)
    pred = predict(default_judge(), images.reshape(-1, *images.shape[2:]))[axis]
    return {NAMES[axis][i]: n for i, n in Counter(pred.tolist()).most_common()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bench_dir", type=Path)
    ap.add_argument("sequence", choices=sorted(SEQUENCES))
    ap.add_argument("seed", type=int)
    ap.add_argument("steps")
    ap.add_argument("method", nargs="?", default="duge-robust")
    ap.add_argument("--concept")
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = BenchConfig(methods=(a.method,), ablation=(), sequence=SEQUENCES[a.sequence], seeds=(a.seed,))
    reqs, scenes = chain_requests(cfg.sequence), eval_scenes(cfg)
    folder = a.bench_dir / "runs" / a.method / f"seed-{a.seed}"
    adapters = sorted(str(p) for p in folder.iterdir() if p.is_dir() and not p.name.endswith(".partial"))
    base = load_base("toy", "cpu")
    for k in [int(x) for x in a.steps.split(",")]:
        model = load_base("toy", "cpu")
        apply_to_base(model, adapters[:k])
        before, after = per_class(base, reqs[:k], scenes, a.seed), per_class(model, reqs[:k], scenes, a.seed)
        print(f"after request {k} ({reqs[k - 1].concept}):")
        for key in sorted(before):
            b, s = 100 * np.mean(before[key]), 100 * np.mean(after[key])
            if abs(b - s) >= 1:
                print(f"  {key[0]:7s} {key[1]:9s} base {b:5.1f}  now {s:5.1f}  ({len(before[key])} images)")
        if a.concept:
            print(f"  '{a.concept}' prompts drawn as: {drawn_as(model, a.concept, a.seed)}")


if __name__ == "__main__":
    main()
