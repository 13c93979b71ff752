"""The bench's concept-recovery attack (attack.py): after a run's last request (or every request, with
`attack_every_step`), every target erased so far is attacked on the composed model, and once per seed on the base
(the ceiling). Pham et al. 2023 ("Circumventing Concept Erasure Methods", Sec. 3): textual inversion into the
erased model, from the base model's images of the concept.

A step's row gains `recovered` (the mean over the targets so far of the share of attacked images read as the
target), `recovered_targets` ({concept: share}) and `attack_seconds`; the attacked images (the first scene of each
target) are kept in attack-NN.npy for the report's grid. The ceiling is in DIR/base/attack-seed-S.json(.npy).
On a real base the attacked prompts are each request's templates and the bench's judge reads them
(attack_plan.py), as it reads UA.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .io import atomic_path


def wanted(cfg, run, k: int) -> bool:
    """Whether request k of this run is attacked: the methods' runs (not the ablation variants), at the last
    request, or at every one with attack_every_step; never with attack_steps 0."""
    return bool(cfg.attack_steps) and not run.variant and (cfg.attack_every_step or k == len(cfg.sequence))


def plans(cfg, base, reqs: list, judge=None) -> list:
    """What the attack prompts and how it judges, per request (attack_plan.py): the toy's scenes, or on a real base
    the request's templates read by the bench's judge (`judge` when the caller has it loaded, else loaded here)."""
    from .attack_plan import generic_plan, toy_plan

    if cfg.is_toy:
        return [toy_plan(r.concept) for r in reqs]
    if judge is None:
        from .judges import load_judge

        judge = load_judge(cfg.judge, cfg.device)
    return [generic_plan(base.world, r, judge) for r in reqs]


def attack_targets(model, base, plans: list, steps: int, seed: int, cache: Path, say=None) -> tuple[dict, np.ndarray]:
    """Attack each plan's concept on `model` (in place: its tokenizer and text encoder gain the placeholder words)
    with the base's images of it: ({concept: recovered share}, the first attacked image of each, (T, H, W, 3))."""
    from .attack import AttackConfig, attack_once, concept_latents

    cfg = AttackConfig(steps=steps, seed=seed)
    rates, firsts = {}, []
    for i, plan in enumerate(plans):
        x0 = concept_latents(base, plan, seed, cache)
        tick = (lambda d, t, i=i: say("attack", i * t + d, len(plans) * t)) if say else None
        got = attack_once(model, plan, x0, cfg, tick)
        rates[plan.concept] = round(got.rate, 4)
        firsts.append(got.images[0, 0])
    return rates, np.stack(firsts)


def attack_step(cfg, out: Path, run, composed, reqs: list, folder: Path, k: int, say, judge=None) -> dict:
    """Attack every target of requests 1..k on the composed stack; the row's `recovered` figures (a real base's
    images read by `judge`, the one the step was judged with)."""
    from .models import load_base

    t0 = time.time()
    base = load_base(cfg.base, cfg.device, mixed_precision=cfg.mixed_precision)
    rates, images = attack_targets(composed, base, plans(cfg, base, reqs, judge), cfg.attack_steps, run.seed,
                                   out / "cache", say)
    with atomic_path(folder / f"attack-{k:02d}.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, images)
    return {"recovered": round(float(np.mean(list(rates.values()))), 4), "recovered_targets": rates,
            "attack_seconds": round(time.time() - t0, 1)}


def ceiling_file(out: Path, seed: int) -> Path:
    return out / "base" / f"attack-seed-{seed}.json"


def measure_ceiling(cfg, out: Path, seed: int, say=None) -> dict | None:
    """The same attack on the base for every target of the sequence (once per seed; kept, so a rerun reads it)."""
    from .bench_config import chain_requests
    from .models import load_base

    if not cfg.attack_steps:
        return None
    path = ceiling_file(out, seed)
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.time()
    base = load_base(cfg.base, cfg.device, mixed_precision=cfg.mixed_precision)
    # one model is attacked and draws the images: an attack leaves its UNet and the words' embeddings as they were
    rates, images = attack_targets(base, base, plans(cfg, base, chain_requests(cfg.sequence, cfg.base)),
                                   cfg.attack_steps, seed, out / "cache", say)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path.with_suffix(".npy")) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, images)
    info = {"seed": seed, "steps": cfg.attack_steps, "ceiling": round(float(np.mean(list(rates.values()))), 4),
            "ceiling_targets": rates, "seconds": round(time.time() - t0, 1)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    return info
