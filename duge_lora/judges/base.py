"""What every judge shares: its name and kind, batching, image preprocessing, and label matching.

A judge reads images a Stable Diffusion base generated and says which concept each shows (predict / matches), so
that UA (unlearning accuracy: the share of target images no longer read as the target) and the preservation
metrics can be measured on real bases. Images are float tensors (N, 3, H, W) in [0, 1], any size: the judge's own
image processor resizes and normalises them (with do_rescale=False, since they are already in [0, 1]).
"""
from __future__ import annotations

import re

import torch

from ..errors import UsageError

BATCH = 64     # images (or texts) per forward pass


def normalise(text: str) -> str:
    """A label or concept compared case- and space-insensitively ('Golden  Retriever' == 'golden_retriever')."""
    return re.sub(r"\s+", " ", text.replace("_", " ")).strip().lower()


class Judge:
    """A model that says which concept an image shows; subclasses: ClipJudge (clip.py), ClassifierJudge (classifier.py)."""
    name: str            # the reference as the user gave it: a folder or a Hub id
    kind: str            # "clip" or "classifier"

    def __init__(self, name: str, model, processor, device: torch.device):
        self.name, self.model, self.processor, self.device = name, model, processor, device

    # --- what a judge says -------------------------------------------------------------------------------------
    def predict(self, images: torch.Tensor, candidates: list[str]) -> list[str]:
        """For each image, the label the judge reads in it."""
        raise NotImplementedError

    def names(self, label: str) -> list[str]:
        """The names a predicted label stands for (a classifier's label lists synonyms)."""
        return [normalise(label)]

    def matches(self, label: str, concept: str) -> bool:
        """Whether a predicted label means the concept (case- and space-insensitive)."""
        return normalise(concept) in self.names(label)

    def has_concept(self, concept: str) -> bool:
        """Whether the judge can recognise the concept at all."""
        return True

    def check_concepts(self, concepts: list[str]) -> None:
        """Refuse (UsageError) concepts the judge cannot recognise, before any image is generated."""

    def clip_score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor | None:
        """Per-image CLIP score with its own prompt (None: this judge has no text side)."""
        return None

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, D) float32 image features, for a Fréchet distance between two image sets."""
        raise NotImplementedError

    # --- helpers ----------------------------------------------------------------------------------------------
    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """The processor's pixel_values for a batch of [0, 1] images, on the judge's device."""
        arrays = [im.numpy() for im in images.detach().to("cpu", torch.float32).clamp(0, 1)]
        out = self.processor(images=arrays, return_tensors="pt", do_rescale=False, input_data_format="channels_first")
        return out["pixel_values"].to(self.device, torch.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, device={self.device})"


def check_images(images) -> None:
    """Images must be a non-empty float tensor (N, 3, H, W); a clear UsageError otherwise."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3 or not images.shape[0] \
            or not images.is_floating_point():
        what = f"a tensor of shape {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise UsageError(f"A judge reads a non-empty float tensor of images (N, 3, H, W) in [0, 1], not {what}.",
                         "Pass the decoded images as they come from the pipeline (output_type='pt').")


def batches(n: int, size: int = BATCH):
    """Slices of range(n), `size` at a time."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))
