"""Measuring erasure on a real base with a judge (judges/): UA, UA_prev, IRA, CRA, FD, with the toy's JSON keys.

method.md, "Metrics", on a base whose world we do not render:
- UA of a target: the share of its images (every template of its kind, its synonyms too) the judge does NOT read
  as the target. With a CLIP judge an image shows the concept when the concept's phrase scores highest among
  {concept, anchor, preserve concepts} (zero-shot, Radford et al. 2021); with an image classifier when its
  top-1 label is the concept's class (the protocol of ESD and the DUGE paper: UA = 1 - top-1 accuracy).
- IRA (in-domain retention): the related concepts (every target's preserve set) read as themselves.
- CRA (cross-domain retention): everyday subjects (CLIP: OTHER, judged among themselves; classifier: a fixed
  sample of its other classes) read as themselves.
- clip_score: the mean CLIP score of every image with its prompt (CLIP judge only).
The images of IRA and CRA have the same prompts and seeds at every step, so their judge features give the FD
against the base (the bench keeps the base's).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np
import torch

from .evaluate import EvalReport
from .generate import Progress, generate
from .metrics import frechet_distance
from .records import Request

OTHER = ("a dog", "a car", "a house", "a tree", "a bird", "a bicycle", "a cup of coffee", "a mountain",
         "a boat", "a chair")
N_OTHER_CLASSES = 10            # classifier judge: other classes prompted for CRA


@dataclass
class Item:
    prompt: str
    role: str                   # "target" / "related" / "other"
    concept: str                # what the prompt shows
    candidates: tuple[str, ...] = ()   # CLIP: the phrases judged among; the first one of `concept` is correct
    phrase: str = ""


def eval_items(world, judge, targets: list[Request], seed: int = 0) -> list[Item]:
    """Every prompt of an evaluation with what it shows and how the judge decides."""
    items: list[Item] = []
    classifier = judge.kind == "classifier"
    if classifier:
        judge.check_concepts([t.concept for t in targets])
    related = []
    for t in targets:
        cands = world.judge_candidates(t) | {e.concept: world.judge_candidates(e)[e.concept] for e in targets}
        for tpl in world.templates_of(t):
            for w in (t.concept, *t.synonyms):
                items.append(Item(tpl.format(w), "target", t.concept, tuple(cands.values()), cands[t.concept]))
        for p in t.preserve:
            if p.lower() in {x.concept.lower() for x in targets} or (classifier and not judge.has_concept(p)):
                continue
            related += [Item(tpl.format(p), "related", p, tuple(cands.values()), cands.get(p, p)) for tpl in world.templates_of(t)[:3]]
    items += list({i.prompt: i for i in related}.values())
    erased = {t.concept.lower() for t in targets}
    if classifier:
        names = [judge.names(label)[0] for label in judge.labels]
        names = [n for n in names if n not in erased and not any(judge.matches(lab, n) for lab in
                                                                   [t.concept for t in targets])]
        others = random.Random(seed).sample(names, min(N_OTHER_CLASSES, len(names)))
    else:
        others = [o for o in OTHER if o not in erased]
    items += [Item(f"a photo of {o}", "other", o, tuple(others), o) for o in others]
    return items


def _reads(judge, images: torch.Tensor, items: list[Item], n: int, embeds: torch.Tensor) -> np.ndarray:
    """(N,) True where the judge reads image k as what its prompt shows (CLIP: among the item's candidates, from
    the image embeddings `embeds` already computed; a classifier: its top-1 label)."""
    per_image = [it for it in items for _ in range(n)]
    out = np.zeros(len(per_image), bool)
    if judge.kind == "classifier":
        labels = judge.predict(images, [])
        return np.array([judge.matches(lab, it.concept) for lab, it in zip(labels, per_image)])
    groups: dict[tuple, list[int]] = {}
    for k, it in enumerate(per_image):
        groups.setdefault(it.candidates, []).append(k)
    for cands, rows in groups.items():
        got = judge.predict_embedded(embeds[rows], list(cands))
        out[rows] = [g == per_image[k].phrase for g, k in zip(got, rows)]
    return out


@dataclass
class GenericSample:
    items: list[Item]
    reads: np.ndarray               # (N,) judged as prompted
    role: np.ndarray                # (N,) per image
    concept: np.ndarray
    features: np.ndarray            # (N, D) judge features
    images: np.ndarray              # (N, H, W, 3) uint8
    clip_score: float | None


def sample_generic(base, judge, targets: list[Request], n: int, seed: int, progress: Progress | None = None) -> GenericSample:
    items = eval_items(base.world, judge, targets, seed)
    images = generate(base, [it.prompt for it in items], n, seed, progress=progress)
    flat = images.reshape(-1, *images.shape[2:])
    x = torch.from_numpy(flat).permute(0, 3, 1, 2).float() / 255
    features = judge.features(x)               # one pass of the images: CLIP's reads and scores reuse it
    reads = _reads(judge, x, items, n, features)
    prompts = [it.prompt for it in items for _ in range(n)]
    score = judge.clip_score_embedded(features, prompts) if judge.kind == "clip" else None
    return GenericSample(items, reads, np.repeat([it.role for it in items], n), np.repeat([it.concept for it in items], n),
                         features.numpy(), flat, None if score is None else float(score.mean()))


def metrics_of(s: GenericSample, targets: list[Request]) -> dict:
    """UA per target (1 - share read as the target), mean UA, the last one, UA_prev, IRA and CRA."""
    mean = lambda m: float(s.reads[m].mean()) if m.any() else None  # noqa: E731
    per = []
    for t in targets:
        hit = mean((s.role == "target") & (s.concept == t.concept))
        per.append({"concept": t.concept, "axis": t.axis, "ua": None if hit is None else 1 - hit})
    uas = [p["ua"] for p in per if p["ua"] is not None]
    prev = [p["ua"] for p in per[:-1] if p["ua"] is not None]
    ira, cra = mean(s.role == "related"), mean(s.role == "other")
    return {"targets": per, "mean_ua": float(np.mean(uas)) if uas else None, "ua": per[-1]["ua"] if per else None,
            "ua_prev": float(np.mean(prev)) if prev else None, "ira": ira, "cra": cra,
            "accuracy": {"related": ira, "other": cra}}


def evaluate(base, judge, targets: list[Request], n: int = 2, seed: int = 0, progress: Progress | None = None,
             reference: np.ndarray | None = None) -> EvalReport:
    """eval on a real base: generate n images per prompt, judge them, and report the toy's keys (plus FD against
    `reference`, the base's features of the same non-target prompts, when given; and the CLIP score)."""
    t0 = time.time()
    s = sample_generic(base, judge, targets, n, seed, progress)
    m = metrics_of(s, targets)
    r4 = lambda v: None if v is None else round(v, 4)  # noqa: E731
    keep = s.role != "target"
    fd = frechet_distance(reference, s.features[keep]) if reference is not None else None
    return EvalReport(base=base.name, accuracy={k: r4(v) for k, v in m["accuracy"].items()}, mean_ua=r4(m["mean_ua"]),
                      ua=r4(m["ua"]), ua_prev=r4(m["ua_prev"]), ira=r4(m["ira"]), cra=r4(m["cra"]),
                      targets=[t | {"ua": r4(t["ua"])} for t in m["targets"]], n_images=len(s.reads),
                      n_prompts=len(s.items), images_per_prompt=n, seed=seed, seconds=round(time.time() - t0, 2),
                      judge=judge.name, clip_score=r4(s.clip_score), fd=r4(fd))
