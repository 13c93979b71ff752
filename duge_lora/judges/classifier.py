"""The image-classifier judge: the top-1 label over all of an ImageNet classifier's classes.

The object-erasure protocol of ESD (Gandikota et al. 2023, "Erasing Concepts from Diffusion Models") and of the
DUGE paper: images generated for a class name are classified by a pretrained ImageNet classifier (ResNet-50,
e.g. microsoft/resnet-50), and UA = 1 - the top-1 accuracy on the target class. The prediction is the argmax over
every label in config.id2label, so the candidates a caller passes are ignored; a label such as
"tench, Tinca tinca" matches a concept equal to any of its comma-separated names.

features are the pooled features the classification head reads (its input, captured by a hook on the model's
`classifier` module: for ResNet the global-average-pooled last stage, for ViT the layer-normed CLS token); a model
without a `classifier` module falls back to the last hidden state, global-average-pooled when it is a feature map
(N, C, H, W) or its first (CLS) token when it is a sequence.
"""
from __future__ import annotations

import difflib

import torch

from ..errors import UsageError, param
from .base import Judge, batches, check_images, normalise


class ClassifierJudge(Judge):
    """AutoModelForImageClassification + its image processor."""
    kind = "classifier"

    def __init__(self, name: str, model, processor, device: torch.device):
        super().__init__(name, model, processor, device)
        self.labels = [model.config.id2label[i] for i in sorted(model.config.id2label, key=int)]
        self.known = {n for label in self.labels for n in self.names(label)}

    def names(self, label: str) -> list[str]:
        """'tench, Tinca tinca' -> ['tench', 'tinca tinca']."""
        return [normalise(n) for n in label.split(",") if n.strip()]

    def has_concept(self, concept: str) -> bool:
        return normalise(concept) in self.known

    def check_concepts(self, concepts: list[str]) -> None:
        for concept in concepts:
            if not self.has_concept(concept):
                close = difflib.get_close_matches(normalise(concept), sorted(self.known), n=5, cutoff=0.6)
                near = f"close ones: {', '.join(close)}" if close else f"e.g. {', '.join(sorted(self.known)[:5])}"
                raise UsageError(f"The classifier {param('judge')} {self.name} has no label {concept!r} among its "
                                 f"{len(self.labels)} classes, so it cannot tell whether an image shows it.",
                                 f"Name the concept as one of its labels ({near}), or use a CLIP judge, which reads "
                                 "any concept.")

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(N, number of labels) logits, on the CPU."""
        check_images(images)
        return torch.cat([self.model(pixel_values=self.pixels(images[s])).logits.float().cpu()
                          for s in batches(len(images))])

    def predict(self, images: torch.Tensor, candidates: list[str] | None = None) -> list[str]:
        """For each image, its top-1 label over all the classifier's labels (candidates are ignored)."""
        return [self.model.config.id2label[i] for i in self.logits(images).argmax(dim=1).tolist()]

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, D) pooled features before the classification head (see the module docstring)."""
        check_images(images)
        head = getattr(self.model, "classifier", None)
        parts = []
        for s in batches(len(images)):
            pixels = self.pixels(images[s])
            if isinstance(head, torch.nn.Module):
                seen = []
                hook = head.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
                try:
                    self.model(pixel_values=pixels)
                finally:
                    hook.remove()
                parts.append(seen[0].flatten(1))
            else:
                last = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
                parts.append(last.mean(dim=(2, 3)) if last.ndim == 4 else last[:, 0])
        return torch.cat(parts).float().cpu()
