"""Unlearning metrics from per-image judge verdicts (UnlearnCanvas / DUGE conventions, method.md "Metrics").

Inputs are plain arrays: the scene each image was prompted with, and per axis whether the judge read that
axis as prompted. No model code here, so the metrics can be tested on hand-made verdicts.
  UA       = 1 - accuracy on the target's axis over images prompted with the target (synonyms included)
  UA_prev  = mean UA of the earlier targets
  IRA      = accuracy on the targets' own axes over images whose value on that axis is not a target
  CRA      = accuracy on the other axes over images that show no target at all
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
    result: dict = {"accuracy": per_axis_accuracy(scenes, hits, canon), "ua": None, "ua_prev": None,
                    "ira": None, "cra": None, "targets": []}
    if not targets:
        return result
    uas = [unlearning_accuracy(scenes, hits, axis, c) for axis, c in targets]
    result["targets"] = [{"concept": c, "axis": a, "ua": u} for (a, c), u in zip(targets, uas)]
    result["ua"] = uas[-1]
    prev = [u for u in uas[:-1] if u is not None]
    result["ua_prev"] = float(np.mean(prev)) if prev else None
    target_axes = sorted({a for a, _ in targets})
    any_target = np.array([any(has(s, a, c) for a, c in targets) for s in scenes])
    ira = []
    for axis in target_axes:
        hit_target = np.array([any(has(s, a, c) for a, c in targets if a == axis) for s in scenes])
        ira.append(_mean(hits[axis], canon & ~hit_target & axis_mask(scenes, axis)))
    cra = [_mean(hits[axis], canon & ~any_target & axis_mask(scenes, axis)) for axis in AXES if axis not in target_axes]
    result["ira"] = _nanmean(ira)
    result["cra"] = _nanmean(cra)
    return result


def _nanmean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None
