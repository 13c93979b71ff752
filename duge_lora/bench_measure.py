"""How the bench judges the base (step 0) and each composed stack: the toy world's judge, or a real base's judge.

Both give a step's row with the same keys (method.md, "Metrics"): ua, ua_prev, mean_ua, ira, cra, erosion (the
accuracy on prompts that show no target, base minus step k, same prompts and seeds) and fd (judge features of
those images against the base's), plus per-target UA and the probe images shown in the grids.
- ToyMeasure: every scene of the toy world (or a balanced share), read by the toy judge (evaluate.py).
- JudgeMeasure: every target's prompts of the whole chain, the related concepts and everyday subjects, read by a
  CLIP or classifier judge (generic_eval.py). The prompts are those of the whole chain at every step, so the
  non-target images are the same prompts and seeds as the base's.
"""
from __future__ import annotations

import numpy as np

from .bench_config import BenchConfig, chain_requests, eval_scenes, probe_rows

N_PROBE_OTHER = 3


class ToyMeasure:
    """The toy world's judge on its scenes."""
    judge = None                         # no loaded judge model: the world's own reads the images

    def __init__(self, cfg: BenchConfig):
        self.cfg = cfg

    def base_arrays(self, base, seed: int) -> tuple[dict, dict]:
        """(arrays kept for later steps: features, images, verdicts; info: accuracy, per-target UA, the grids' row
        labels: probe_labels)."""
        from .evaluate import sample_eval
        from .metrics import unlearning_metrics

        reqs = chain_requests(self.cfg.sequence)
        s = sample_eval(base, self.cfg.images, seed, reqs, eval_scenes(self.cfg), features=True)
        m = unlearning_metrics(s.scenes, s.hits, s.synonym, [(r.axis, r.concept) for r in reqs])
        canon = ~s.synonym
        rows, scenes = probe_rows(self.cfg), eval_scenes(self.cfg)
        arrays = {"features": s.features[canon], "images": s.images[canon], **{f"hit_{a}": h[canon] for a, h in s.hits.items()},
                  "probe": s.images[canon][[r * self.cfg.images for r in rows]]}
        return arrays, {"accuracy": m["accuracy"], "targets": m["targets"], "images": int(canon.sum()),
                        "probe_labels": [scenes[r].prompt() for r in rows]}

    def step(self, composed, reqs: list, seed: int, base: dict, progress=None) -> tuple[dict, np.ndarray]:
        """(the step's metrics, the probe rows' images)."""
        from .evaluate import sample_eval
        from .metrics import erosion, frechet_distance, non_target_mask, overall_accuracy, unlearning_metrics

        cfg = self.cfg
        sample = sample_eval(composed, cfg.images, seed, reqs, eval_scenes(cfg), features=True, progress=progress)
        targets = [(r.axis, r.concept) for r in reqs]
        m = unlearning_metrics(sample.scenes, sample.hits, sample.synonym, targets)
        canon = ~sample.synonym
        scenes = [s for s, c in zip(sample.scenes, canon) if c]
        keep = non_target_mask(scenes, np.zeros(len(scenes), bool), targets)       # same prompts and seeds as the base
        hits = {a: h[canon] for a, h in sample.hits.items()}
        base_hits = {a: base[f"hit_{a}"] for a in hits}
        row = {"ua": m["ua"], "ua_prev": m["ua_prev"], "mean_ua": m["mean_ua"], "ira": m["ira"], "cra": m["cra"],
               "erosion": erosion(overall_accuracy(scenes, base_hits, keep), overall_accuracy(scenes, hits, keep)),
               "fd": frechet_distance(base["features"][keep], sample.features[canon][keep]),
               "non_target_images": int(keep.sum()), "accuracy": m["accuracy"], "targets": m["targets"]}
        return row, sample.images[canon][[r * cfg.images for r in probe_rows(cfg)]]


class JudgeMeasure:
    """A real base's judge (CLIP or an image classifier) on the prompts of the generic world."""

    def __init__(self, cfg: BenchConfig):
        from .judges import load_judge

        self.cfg = cfg
        self.judge = load_judge(cfg.judge, cfg.device)
        self.chain = chain_requests(cfg.sequence, cfg.base)

    def _sample(self, base, seed: int, progress=None):
        from .generic_eval import sample_generic

        return sample_generic(base, self.judge, self.chain, self.cfg.images, seed, progress)

    def _probe_rows(self, s) -> list[int]:
        """The first image of each target's first prompt, then of the first N_PROBE_OTHER everyday subjects."""
        n, rows = self.cfg.images, []
        for r in self.chain:
            rows.append(next(i for i, it in enumerate(s.items) if it.role == "target" and it.concept == r.concept) * n)
        rows += [i * n for i, it in enumerate(s.items) if it.role == "other"][:N_PROBE_OTHER]
        return rows

    def base_arrays(self, base, seed: int) -> tuple[dict, dict]:
        from .generic_eval import metrics_of

        s = self._sample(base, seed)
        keep = s.role != "target"
        m = metrics_of(s, self.chain)
        rows = self._probe_rows(s)
        arrays = {"features": s.features[keep], "reads": s.reads[keep], "probe": s.images[rows]}
        return arrays, {"accuracy": m["accuracy"], "targets": m["targets"], "images": int(keep.sum()),
                        "probe_labels": [s.items[r // self.cfg.images].prompt for r in rows], "judge": self.cfg.judge}

    def step(self, composed, reqs: list, seed: int, base: dict, progress=None) -> tuple[dict, np.ndarray]:
        from .generic_eval import metrics_of
        from .metrics import erosion, frechet_distance

        s = self._sample(composed, seed, progress)
        keep = s.role != "target"
        m = metrics_of(s, reqs)
        row = {k: m[k] for k in ("ua", "ua_prev", "mean_ua", "ira", "cra", "accuracy", "targets")}
        row |= {"erosion": erosion(float(base["reads"].mean()), float(s.reads[keep].mean())),
                "fd": frechet_distance(base["features"], s.features[keep]), "non_target_images": int(keep.sum()),
                "clip_score": s.clip_score}
        return row, s.images[self._probe_rows(s)]


def measure_for(cfg: BenchConfig):
    return ToyMeasure(cfg) if cfg.is_toy else JudgeMeasure(cfg)
