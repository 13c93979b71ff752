"""Unlearning metrics from per-image judge verdicts (UnlearnCanvas / DUGE conventions, method.md "Metrics").

Inputs are plain arrays: the scene each image was prompted with, and per axis whether the judge read that
axis as prompted. No model code here, so the metrics can be tested on hand-made verdicts.
  UA       = 1 - accuracy on the target's axis over images prompted with the target (synonyms included)
  mean UA  = mean UA over every target of the stack (the headline: the last target alone hides the others)
  UA_prev  = mean UA of the earlier targets
  IRA      = accuracy on the targets' own axes over images whose value on that axis is not a target
  CRA      = per target, accuracy on the axes other than its own over images that show no target at all;
             averaged over the targets (one target: UnlearnCanvas' CRA; defined even once every axis has a target)
"""
from __future__ import annotations

import numpy as np

from .toy.world import AXES, SLOT, Scene


def has(scene: Scene, axis: str, concept: str) -> bool:
    return getattr(scene, SLOT[axis]) == concept


def _mean(hits: np.ndarray, keep: np.ndarray) -> float | None:
    return float(hits[keep].mean()) if keep.any() else None


def axis_mask(scenes: list[Scene], axis: str) -> np.ndarray:
    """Images on which an axis is defined: object/character axes only on their own kind of subject."""
    if axis in ("object", "character"):
        return np.array([s.kind == axis for s in scenes])
    return np.ones(len(scenes), bool)


def per_axis_accuracy(scenes: list[Scene], hits: dict[str, np.ndarray], keep: np.ndarray | None = None) -> dict[str, float | None]:
    keep = np.ones(len(scenes), bool) if keep is None else keep
    return {axis: _mean(hits[axis], keep & axis_mask(scenes, axis)) for axis in AXES}


def unlearning_accuracy(scenes: list[Scene], hits: dict[str, np.ndarray], axis: str, concept: str) -> float | None:
    """UA of one target: 1 - the judge's accuracy on its axis over images prompted with it."""
    acc = _mean(hits[axis], np.array([has(s, axis, concept) for s in scenes]))
    return None if acc is None else 1.0 - acc


def unlearning_metrics(scenes: list[Scene], hits: dict[str, np.ndarray], synonym: np.ndarray,
                       targets: list[tuple[str, str]]) -> dict:
    """UA, UA_prev, IRA, CRA for targets [(axis, concept), ...] in request order (the last one is current).

    synonym[i] marks images prompted with a synonym: they count for UA only.
    """
    canon = ~synonym
    result: dict = {"accuracy": per_axis_accuracy(scenes, hits, canon), "mean_ua": None, "ua": None, "ua_prev": None,
                    "ira": None, "cra": None, "targets": []}
    if not targets:
        return result
    uas = [unlearning_accuracy(scenes, hits, axis, c) for axis, c in targets]
    result["targets"] = [{"concept": c, "axis": a, "ua": u} for (a, c), u in zip(targets, uas)]
    result["ua"] = uas[-1]
    result["mean_ua"] = _nanmean(uas)
    prev = [u for u in uas[:-1] if u is not None]
    result["ua_prev"] = float(np.mean(prev)) if prev else None
    target_axes = sorted({a for a, _ in targets})
    any_target = np.array([any(has(s, a, c) for a, c in targets) for s in scenes])
    ira = []
    for axis in target_axes:
        hit_target = np.array([any(has(s, a, c) for a, c in targets if a == axis) for s in scenes])
        ira.append(_mean(hits[axis], canon & ~hit_target & axis_mask(scenes, axis)))
    clean = {axis: _mean(hits[axis], canon & ~any_target & axis_mask(scenes, axis)) for axis in AXES}
    cra = [_nanmean([clean[axis] for axis in AXES if axis != own]) for own, _ in targets]
    result["ira"] = _nanmean(ira)
    result["cra"] = _nanmean(cra)
    return result


def _nanmean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def non_target_mask(scenes: list[Scene], synonym: np.ndarray, targets: list[tuple[str, str]]) -> np.ndarray:
    """Images prompted canonically with a scene that shows none of the targets: the 'non-target prompts'."""
    return ~synonym & np.array([not any(has(s, a, c) for a, c in targets) for s in scenes])


def overall_accuracy(scenes: list[Scene], hits: dict[str, np.ndarray], keep: np.ndarray) -> float | None:
    """Mean over axes of the judge's accuracy on the images in `keep` (each axis where it is defined)."""
    return _nanmean(list(per_axis_accuracy(scenes, hits, keep).values()))


def erosion(base_acc: float | None, step_acc: float | None) -> float | None:
    """Generalization erosion at step k (method.md, "Metrics"): accuracy on all non-target prompts at step 0
    minus at step k, both measured on the same prompts and seeds (positive = the model got worse)."""
    return None if base_acc is None or step_acc is None else base_acc - step_acc


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float | None:
    """Frechet distance between two sets of classifier features (N, D), each fitted by a Gaussian:
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (Heusel et al. 2017, eq. 6), computed by torchmetrics'
    FrechetInceptionDistance with the features passed through, never synchronised across processes. None when
    either set has fewer than 2 samples."""
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    if len(features_a) < 2 or len(features_b) < 2:
        return None

    class Given(torch.nn.Module):            # the features are already computed (the judge's, see evaluate.py)
        num_features = int(features_a.shape[1])

        def forward(self, x):
            return x

    # sync_on_compute off: in a process group (the bench's ranks, a data-parallel run) torchmetrics would otherwise
    # gather every rank's features into this one distance, mixing other runs' images in
    fd = FrechetInceptionDistance(feature=Given(), normalize=True, sync_on_compute=False)
    fd.update(torch.as_tensor(features_a, dtype=torch.float64), real=True)
    fd.update(torch.as_tensor(features_b, dtype=torch.float64), real=False)
    return max(0.0, float(fd.compute()))
