"""The CLIP zero-shot judge: which of the candidate concepts an image is closest to in CLIP's joint embedding.

Zero-shot classification as in CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural
Language Supervision"): each candidate is written into neutral templates ("a photo of {}."), the text embeddings
of its templates are averaged (prompt ensembling) and renormalised, and an image is read as the candidate with the
highest cosine similarity. This is how concept-erasure evaluations measure, on real Stable Diffusion bases, whether
an erased concept still appears (UA = 1 - the share of target-prompt images read as the target, among the target
and its neighbours). clip_score is the usual CLIP score (100 x the cosine between an image and its own prompt,
clamped at 0; Hessel et al. 2021), and features are the normalised image embeddings (for a Fréchet distance).
"""
from __future__ import annotations

import torch

from .base import Judge, batches, check_images

TEMPLATES = ("a photo of {}.", "a picture of {}.")


def _pooled(out) -> torch.Tensor:
    """get_*_features returns a tensor (transformers 4) or an output whose pooler_output is the projection (5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClipJudge(Judge):
    """CLIPModel + its tokenizer and image processor."""
    kind = "clip"

    def __init__(self, name: str, model, processor, tokenizer, device: torch.device):
        super().__init__(name, model, processor, device)
        self.tokenizer = tokenizer
        self.templates = TEMPLATES

    @torch.no_grad()
    def image_embeds(self, images: torch.Tensor) -> torch.Tensor:
        """(N, D) unit-norm image embeddings, on the judge's device."""
        check_images(images)
        parts = [_pooled(self.model.get_image_features(pixel_values=self.pixels(images[s])))
                 for s in batches(len(images))]
        return torch.nn.functional.normalize(torch.cat(parts).float(), dim=-1)

    @torch.no_grad()
    def text_embeds(self, texts: list[str]) -> torch.Tensor:
        """(M, D) unit-norm text embeddings (texts longer than the tokenizer's limit are truncated, as CLIP does)."""
        parts = []
        for s in batches(len(texts)):
            tokens = self.tokenizer(list(texts[s]), padding=True, truncation=True, return_tensors="pt").to(self.device)
            parts.append(_pooled(self.model.get_text_features(input_ids=tokens["input_ids"],
                                                              attention_mask=tokens["attention_mask"])))
        return torch.nn.functional.normalize(torch.cat(parts).float(), dim=-1)

    def candidate_embeds(self, candidates: list[str]) -> torch.Tensor:
        """(C, D): each candidate's template embeddings, averaged and renormalised."""
        texts = [t.format(c) for t in self.templates for c in candidates]
        per_template = self.text_embeds(texts).view(len(self.templates), len(candidates), -1)
        return torch.nn.functional.normalize(per_template.mean(0), dim=-1)

    def similarities(self, images: torch.Tensor, candidates: list[str]) -> torch.Tensor:
        """(N, C) cosine similarity of each image with each candidate."""
        if not candidates:
            raise ValueError("the CLIP judge needs at least one candidate concept")
        return (self.image_embeds(images) @ self.candidate_embeds(candidates).T).cpu()

    def predict(self, images: torch.Tensor, candidates: list[str]) -> list[str]:
        """For each image, the candidate it is most similar to."""
        return [candidates[i] for i in self.similarities(images, candidates).argmax(dim=1).tolist()]

    def predict_embedded(self, embeds: torch.Tensor, candidates: list[str]) -> list[str]:
        """predict() from image embeddings already computed (features()), without a second pass of the images."""
        sims = embeds.to(self.device) @ self.candidate_embeds(candidates).T
        return [candidates[i] for i in sims.argmax(dim=1).tolist()]

    def clip_score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """(N,) 100 x cos(image, its own prompt), clamped at 0."""
        return self.clip_score_embedded(self.image_embeds(images), prompts)

    def clip_score_embedded(self, embeds: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """clip_score() from image embeddings already computed (features())."""
        if len(prompts) != len(embeds):
            raise ValueError(f"clip_score needs one prompt per image ({len(prompts)} prompts, {len(embeds)} images)")
        cos = (embeds.to(self.device) * self.text_embeds(prompts)).sum(-1)
        return (100 * cos).clamp(min=0).cpu()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, D) unit-norm CLIP image embeddings."""
        return self.image_embeds(images).cpu()
