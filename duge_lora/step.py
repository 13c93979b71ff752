"""One optimisation step of adapter k: the frozen theta_{k-1} pass, the trained pass, and the loss (method.md, "Loss").

The frozen reference model is the same UNet with the new adapter switched off (architecture.md), so one UNet
serves both passes. What the step computed is grouped in losses.StepOutputs; the terms are losses.TERMS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .adapter import factors, reads_text
from .hooks import AttentionCapture
from .losses import (KeepStates, Objective, Predictions, StepOutputs, extra_refs, reduce_terms, regression_target,
                     terms_of, total)
from .trainset import TrainData, sample_batch

NEW = "duge_new"        # peft name of the adapter being trained


@dataclass
class Step:
    """What every step of one run reads: the UNet (theta_{k-1} merged, adapter k attached), its data and settings."""
    unet: object
    capture: AttentionCapture
    data: TrainData
    scheduler: object                    # a diffusers DDPMScheduler (add_noise, num_train_timesteps)
    objective: Objective
    weights: dict[str, float]
    batch: int
    scaling: float
    autocast: Callable[[], object]
    prev_a: list[list[torch.Tensor]]     # per adapted module (sorted by name): the earlier adapters' A
    keep: KeepStates | None = None
    keep_near: KeepStates | None = None
    protect: KeepStates | None = None
    ff_capture: AttentionCapture | None = None   # the feed-forward blocks' outputs (only when keep_ff weighs > 0)
    repair: object | None = None         # repair.Repair: theta_0's reference on the clean preserve / replay rows
    own_share: float = 0.0               # share of anchor rows from the request's own pairs (trainset.anchor_pairs)

    @property
    def device(self) -> torch.device:
        return self.unet.device


@torch.no_grad()
def keep_states(unet, names: list[str], states: torch.Tensor | None) -> KeepStates | None:
    """Token states to keep and ||W E^T||_F^2 of each module of theta_{k-1} on them (the scale of kv_preservation)."""
    if states is None:
        return None
    modules, norms = dict(unet.named_modules()), []
    for name in names:
        w = getattr(modules[name], "base_layer", modules[name]).weight
        if not reads_text(name):                   # to_q / to_out read image features, not the text states
            norms.append(None)
            continue
        norms.append((states.to(w.device, w.dtype) @ w.T).float().pow(2).sum().clamp_min(1e-12))
    return KeepStates(states.to(unet.device), norms)


def _extra_refs(s: Step, xt, t, seg: dict, e_train: list[int]) -> dict:
    """Frozen predictions on the anchor rows under the target prompt and/or the empty prompt (ESD needs both)."""
    rows = seg["anchor"]
    out = {}
    for kind in extra_refs(s.weights):
        emb = s.data.emb[e_train[rows]] if kind == "target" else s.data.uncond.expand(rows.stop - rows.start, -1, -1)
        out[kind] = s.unet(xt[rows], t[rows], encoder_hidden_states=emb.to(s.device, xt.dtype)).sample.float()
    return out


def _capturing(s: Step, on: bool) -> None:
    for c in (s.capture, s.ff_capture):
        if c is not None:
            c.enabled = on


def _passes(s: Step, xt, t, e_train, e_ref, seg):
    """The frozen pass (adapter k off) and the trained pass; attention outputs of the anchor rows of each, and with
    keep_attn / keep_ff those of the preserve + replay rows (cross-attention / feed-forward outputs).

    Inputs go in the UNet's dtype (an fp16/bf16 base: as diffusers' training scripts cast them to weight_dtype),
    outputs come back in float32, so every loss is computed in float32."""
    anchor = seg.get("anchor", slice(0, 0))
    keep = bool(s.weights.get("keep_attn"))          # also the preserve + replay rows' outputs (L_reg keep_attn)
    ff = s.ff_capture is not None                    # made only when keep_ff weighs > 0 (train.prepare)
    dtype = s.unet.dtype
    xt = xt.to(dtype)
    emb = lambda rows: s.data.emb[rows].to(s.device, dtype)  # noqa: E731
    with s.autocast():
        with torch.no_grad():                                   # frozen theta_{k-1}: the new adapter off
            s.unet.disable_adapters()
            _capturing(s, True)
            eps_ref = s.unet(xt, t, encoder_hidden_states=emb(e_ref)).sample.float()
            attn_ref, keep_ref = _take(s.capture, anchor, keep)
            ff_ref = _take(s.ff_capture, anchor, ff)[1] if ff else []
            _capturing(s, False)
            extra = _extra_refs(s, xt, t, seg, e_train)
            s.unet.enable_adapters()
            _capturing(s, True)
        eps = s.unet(xt, t, encoder_hidden_states=emb(e_train)).sample.float()
        attn, kept = _take(s.capture, anchor, keep)
        ff_kept = _take(s.ff_capture, anchor, ff)[1] if ff else []
        _capturing(s, False)
    return eps, eps_ref, (attn, attn_ref), {"attn": (kept, keep_ref), "ff": (ff_kept, ff_ref)}, extra


def _take(capture, anchor: slice, keep: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The captured outputs of the anchor rows, and with `keep` those of the rows after them (none when the batch
    has no such rows)."""
    out = capture.take(slice(None))
    rest = keep and out and anchor.stop < len(out[0])
    return [o[anchor].float() for o in out], [o[anchor.stop:].float() for o in out] if rest else []


def training_step(s: Step, gen: torch.Generator, shard: tuple[int, int] = (0, 1)) -> tuple[torch.Tensor, dict[str, float]]:
    """One step's forward passes and losses: returns (loss, per-term floats, each reduced over its samples).

    The global batch (rows, noise, timesteps) is always drawn whole from `gen`; shard = (rank, world) keeps this
    rank's rows of each segment (distributed.shard_rows), so the data do not depend on the number of ranks."""
    x0, e_train, e_ref, seg = sample_batch(s.data, s.objective.segments, s.batch, gen, s.own_share)
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(0, s.scheduler.config.num_train_timesteps, (len(x0),), generator=gen)
    if shard[1] > 1:
        from .distributed import shard_rows

        rows, seg = shard_rows(seg, *shard)
        x0, noise, t = x0[rows], noise[rows], t[rows]
        e_train, e_ref = [e_train[i] for i in rows], [e_ref[i] for i in rows]
    x0, noise, t = x0.to(s.device), noise.to(s.device), t.to(s.device)
    xt = s.scheduler.add_noise(x0, noise, t)
    eps, eps_ref, (attn, attn_ref), kept, extra = _passes(s, xt, t, e_train, e_ref, seg)
    if s.repair is not None:
        eps_ref = s.repair.reference(s, xt, t, e_ref, seg, eps_ref)
    fac = factors(s.unet, NEW)
    target = regression_target(s.scheduler, x0, noise, t)
    out = StepOutputs(Predictions(eps, eps_ref, target, seg, extra.get("uncond"), extra.get("target")),
                      attn=attn, attn_ref=attn_ref, factors=[fac[n] for n in sorted(fac)], scaling=s.scaling,
                      prev_a=s.prev_a, keep=s.keep, keep_near=s.keep_near, protect=s.protect,
                      attn_keep=kept["attn"][0], attn_keep_ref=kept["attn"][1],
                      ff_keep=kept["ff"][0], ff_keep_ref=kept["ff"][1])
    terms = reduce_terms(terms_of(out, s.weights))
    return total(terms, s.weights), {k: float(v.detach()) for k, v in terms.items()}
