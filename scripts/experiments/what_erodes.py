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
AXES = ("object", "color", "style")                   # the axes counted per class (world.SLOT: the scene's field)


def sample(model, scenes, seed: int) -> dict[str, np.ndarray]:
    """The judge's per-axis hits on IMAGES images of every scene's canonical prompt (the same seeds for every
    model: image j of prompt i always has the same seed)."""
    return sample_eval(model, IMAGES, 100 + seed, [], scenes).hits


def per_class(hits: dict[str, np.ndarray], reqs, scenes) -> dict:
    """(axis, class) -> the hits on the images of the prompts that show none of reqs' targets, by class."""
    per_image = [s for s in scenes for _ in range(IMAGES)]
    keep = non_target_mask(per_image, np.zeros(len(per_image), bool), [(r.axis, r.concept) for r in reqs])
    out = defaultdict(list)
    for i in np.where(keep)[0]:
        for axis in AXES:
            if axis == "object" and per_image[i].kind != "object":
                continue
            out[(axis, getattr(per_image[i], world.SLOT[axis]))].append(bool(hits[axis][i]))
    return out


def read_as(model, concept: str, seed: int) -> dict:
    """What every world scene of `concept` is read as on its axis (2 images per scene)."""
    axis = world.axis_of(concept)
    scenes = [s for s in world.all_scenes() if getattr(s, world.SLOT[axis]) == concept]
    images = generate(model, [s.prompt() for s in scenes], 2, 100 + seed)
    pred = predict(default_judge(), images.reshape(-1, *images.shape[2:]))[axis]
    return {world.CONCEPTS[axis][i]: n for i, n in Counter(pred.tolist()).most_common()}


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
    base_hits = sample(load_base("toy", "cpu"), scenes, a.seed)             # the base once, for every step
    for k in [int(x) for x in a.steps.split(",")]:
        model = load_base("toy", "cpu")
        apply_to_base(model, adapters[:k])
        before = per_class(base_hits, reqs[:k], scenes)
        after = per_class(sample(model, scenes, a.seed), reqs[:k], scenes)
        print(f"after request {k} ({reqs[k - 1].concept}):")
        for key in sorted(before):
            b, s = 100 * np.mean(before[key]), 100 * np.mean(after[key])
            if abs(b - s) >= 1:
                print(f"  {key[0]:7s} {key[1]:9s} base {b:5.1f}  now {s:5.1f}  ({len(before[key])} images)")
        if a.concept:
            print(f"  '{a.concept}' prompts drawn as: {read_as(model, a.concept, a.seed)}")


if __name__ == "__main__":
    main()
