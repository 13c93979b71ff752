"""The judge: a small CNN that reads a 32x32 toy image, one classification head per axis.

It plays the role of the ResNet-50 classifier of the DUGE / UnlearnCanvas evaluation: metrics
are the fraction of generations it classifies as prompted. The object and character heads have
an extra last class, "none", for images of the other kind.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .world import AXES, CHARACTERS, COLORS, OBJECTS, STYLES, Scene

CLASSES: dict[str, tuple[str, ...]] = {
    "object": OBJECTS + ("none",), "color": COLORS, "style": STYLES, "character": CHARACTERS + ("none",),
}


class Judge(nn.Module):
    """3 conv blocks (32/64/128 channels, BatchNorm) -> 128-d features -> one linear head per axis."""

    def __init__(self, width: int = 32):
        super().__init__()
        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))
        self.body = nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 4 * width),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())            # (B, 4w)
        self.heads = nn.ModuleDict({axis: nn.Linear(4 * width, len(CLASSES[axis])) for axis in AXES})
        self.width = width

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, 128) of images in [-1, 1], (B, 3, 32, 32); used for FD."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {axis: head(f) for axis, head in self.heads.items()}


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 -> (N, 3, 32, 32) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@torch.no_grad()
def predict(judge: Judge, images: np.ndarray, batch: int = 512) -> dict[str, np.ndarray]:
    """Predicted class index per axis for uint8 images (N, 32, 32, 3)."""
    judge.eval()
    out: dict[str, list[np.ndarray]] = {axis: [] for axis in AXES}
    for i in range(0, len(images), batch):
        logits = judge(to_tensor(images[i:i + batch]))
        for axis in AXES:
            out[axis].append(logits[axis].argmax(1).numpy())
    return {axis: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for axis, v in out.items()}


def labels_of(scenes: list[Scene]) -> dict[str, torch.Tensor]:
    """Class index per axis of each scene."""
    rows = [s.labels() for s in scenes]
    return {axis: torch.tensor([r[axis] for r in rows]) for axis in AXES}


def correct(judge: Judge, images: np.ndarray, scenes: list[Scene]) -> dict[str, np.ndarray]:
    """Per axis, a boolean per image: did the judge read the scene's class? (object/character: own kind only)."""
    pred, labels = predict(judge, images), labels_of(scenes)
    return {axis: pred[axis] == labels[axis].numpy() for axis in AXES}


def accuracy(judge: Judge, images: np.ndarray, scenes: list[Scene]) -> dict[str, float]:
    """Per-axis accuracy on images of known scenes; object and character axes count their own kind only."""
    hits = correct(judge, images, scenes)
    kinds = np.array([s.kind for s in scenes])
    acc = {}
    for axis in AXES:
        keep = np.ones(len(scenes), bool) if axis in ("color", "style") else kinds == axis
        acc[axis] = float(hits[axis][keep].mean()) if keep.any() else float("nan")
    return acc


def save_judge(judge: Judge, folder: str | Path) -> None:
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(folder / "judge.safetensors"))
    (folder / "judge.json").write_text(json.dumps({"width": judge.width, "classes": CLASSES}, indent=1))


def load_judge(folder: str | Path) -> Judge:
    from safetensors.torch import load_file
    folder = Path(folder)
    cfg = json.loads((folder / "judge.json").read_text())
    judge = Judge(width=cfg["width"])
    judge.load_state_dict(load_file(str(folder / "judge.safetensors")))
    return judge.eval()
