"""The toy world's evaluator: per-axis accuracy of the toy judge, and UA / UA_prev / IRA / CRA for targets.

Reached through worlds.toy.ToyWorld.evaluate (a base of another world has its own evaluator). This is the
instrument every later figure uses (UnlearnCanvas-style: the fraction of generations a fixed
classifier reads as prompted). Metrics themselves are pure functions in metrics.py.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from . import toy
from .generate import Progress, generate
from .metrics import unlearning_metrics
from .models import Base
from .records import Request
from .worlds import IMAGES_PER_PROMPT
from .toy import world
from .toy.judge import Judge, correct, load_judge, to_tensor


@dataclass
class EvalReport:
    base: str
    accuracy: dict[str, float | None]      # axis -> fraction of generations read as prompted
    mean_ua: float | None = None           # the headline: mean UA over every target of the stack
    ua: float | None = None                # the last (current) target's UA
    ua_prev: float | None = None
    ira: float | None = None
    cra: float | None = None
    targets: list[dict] = field(default_factory=list)
    n_images: int = 0
    n_prompts: int = 0
    images_per_prompt: int = 0
    seed: int = 0
    seconds: float = 0.0
    judge: str | None = None               # the judge (a real base: judges/; the toy: its own)
    clip_score: float | None = None        # mean CLIP score of the images with their prompts (CLIP judge)
    fd: float | None = None                # Fréchet distance to the base on non-target prompts, where measured

    def to_dict(self) -> dict:
        return asdict(self)


def default_judge() -> Judge:
    return load_judge(toy.JUDGE_DIR)


def eval_prompts(targets: list[Request], scenes: list[world.Scene] | None = None) -> list[tuple[str, world.Scene, bool]]:
    """(prompt, scene, is_synonym): every scene's canonical prompt, plus each target's scenes spelled with its synonyms."""
    scenes = scenes or world.all_scenes()
    items = [(s.prompt(), s, False) for s in scenes]
    for t in targets:
        for s in scenes:
            if getattr(s, world.SLOT[t.axis]) == t.concept:
                items += [(s.prompt_with(t.axis, syn), s, True) for syn in t.synonyms]
    return items


@dataclass
class EvalSample:
    """What one evaluation generated and what the judge read: one entry per image."""
    scenes: list                     # the scene each image was prompted with
    synonym: np.ndarray              # (N,) prompted with a target's synonym (counts for UA only)
    hits: dict[str, np.ndarray]      # axis -> (N,) judge read that axis as prompted
    images: np.ndarray               # (N, H, W, 3) uint8
    features: np.ndarray | None = None   # (N, D) the judge's penultimate features (for FD)


def sample_eval(base: Base, n: int = IMAGES_PER_PROMPT, seed: int = 0, targets: list[Request] | None = None,
                scenes: list[world.Scene] | None = None, judge: Judge | None = None,
                progress: Progress | None = None, features: bool = False) -> EvalSample:
    """Generate n images per evaluation prompt and judge them (image j of prompt i always has the same seed)."""
    judge = judge or default_judge()
    items = eval_prompts(targets or [], scenes)
    images = generate(base, [p for p, _, _ in items], n, seed, progress=progress)
    flat = images.reshape(-1, *images.shape[2:])
    per_image = [s for _, s, _ in items for _ in range(n)]
    synonym = np.repeat(np.array([syn for _, _, syn in items]), n)
    feats = judge_features(judge, flat) if features else None
    return EvalSample(per_image, synonym, correct(judge, flat, per_image), flat, feats)


@torch.no_grad()
def judge_features(judge: Judge, images: np.ndarray, batch: int = 512) -> np.ndarray:
    """The judge's 128-d penultimate features of uint8 images (N, 32, 32, 3): the feature space of FD."""
    judge.eval()
    return torch.cat([judge.features(to_tensor(images[i:i + batch])) for i in range(0, len(images), batch)]).numpy()


def evaluate(base: Base, n: int = IMAGES_PER_PROMPT, seed: int = 0, targets: list[Request] | None = None,
             scenes: list[world.Scene] | None = None, judge: Judge | None = None,
             progress: Progress | None = None) -> EvalReport:
    """Generate n images per evaluation prompt, judge them, and compute the metrics for `targets` (last = current)."""
    t0 = time.time()
    targets = targets or []
    s = sample_eval(base, n, seed, targets, scenes, judge, progress)
    m = unlearning_metrics(s.scenes, s.hits, s.synonym, [(t.axis, t.concept) for t in targets])
    r4 = lambda v: None if v is None else round(v, 4)  # noqa: E731
    return EvalReport(base=base.name, accuracy={k: r4(v) for k, v in m["accuracy"].items()}, mean_ua=r4(m["mean_ua"]), ua=r4(m["ua"]),
                      ua_prev=r4(m["ua_prev"]), ira=r4(m["ira"]), cra=r4(m["cra"]),
                      targets=[t | {"ua": r4(t["ua"])} for t in m["targets"]], n_images=len(s.scenes),
                      n_prompts=len(s.scenes) // n, images_per_prompt=n, seed=seed, seconds=round(time.time() - t0, 2))
