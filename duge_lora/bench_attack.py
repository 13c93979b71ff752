"""The bench's concept-recovery attack (attack.py): after a run's last request (or every request, with
`attack_every_step`), every target erased so far is attacked on the composed model, and once per seed on the base
(the ceiling). Pham et al. 2023 ("Circumventing Concept Erasure Methods", Sec. 3): textual inversion into the
erased model, from the base model's images of the concept.

A step's row gains `recovered` (the mean over the targets so far of the share of attacked images read as the
target), `recovered_targets` ({concept: share}) and `attack_seconds`; the attacked images (the first scene of each
target) are kept in attack-NN.npy for the report's grid. The ceiling is in DIR/base/attack-seed-S.json(.npy).
Toy world only: a real base has no attack yet (its rows carry no `recovered`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .io import atomic_path


def wanted(cfg, run, k: int) -> bool:
    """Whether request k of this run is attacked: the methods' runs (not the ablation variants), at the last
    request, or at every one with attack_every_step; never with attack_steps 0 or on a real base."""
    return bool(cfg.attack_steps) and cfg.is_toy and not run.variant and (cfg.attack_every_step or k == len(cfg.sequence))


def attack_targets(model, base, concepts: list[str], steps: int, seed: int, cache: Path, say=None) -> tuple[dict, np.ndarray]:
    """Attack each concept on `model` (in place: its tokenizer and text encoder gain the placeholder words) with
    the base's images of it: ({concept: recovered share}, the first attacked image of each, (T, H, W, 3))."""
    from .attack import AttackConfig, attack_once, concept_latents

    cfg = AttackConfig(steps=steps, seed=seed)
    rates, firsts = {}, []
    for i, concept in enumerate(concepts):
        x0 = concept_latents(base, concept, seed, cache)
        tick = (lambda d, t, i=i: say("attack", i * t + d, len(concepts) * t)) if say else None
        got = attack_once(model, concept, x0, cfg, tick)
        rates[concept] = round(got.rate, 4)
        firsts.append(got.images[0, 0])
    return rates, np.stack(firsts)


def attack_step(cfg, out: Path, run, composed, reqs: list, folder: Path, k: int, say) -> dict:
    """Attack every target of requests 1..k on the composed stack; the row's `recovered` figures."""
    from .models import load_base

    t0 = time.time()
    base = load_base(cfg.base, cfg.device, mixed_precision=cfg.mixed_precision)
    rates, images = attack_targets(composed, base, [r.concept for r in reqs], cfg.attack_steps, run.seed,
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

    if not (cfg.attack_steps and cfg.is_toy):
        return None
    path = ceiling_file(out, seed)
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.time()
    base = load_base(cfg.base, cfg.device, mixed_precision=cfg.mixed_precision)
    # one model is attacked and draws the images: an attack leaves its UNet and the words' embeddings as they were
    rates, images = attack_targets(base, base, [r.concept for r in chain_requests(cfg.sequence)], cfg.attack_steps,
                                   seed, out / "cache", say)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path.with_suffix(".npy")) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, images)
    info = {"seed": seed, "steps": cfg.attack_steps, "ceiling": round(float(np.mean(list(rates.values()))), 4),
            "ceiling_targets": rates, "seconds": round(time.time() - t0, 1)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(info, indent=2))
    return info
