"""The repair option (TrainConfig.repair; ours): L_pp and L_replay read theta_0, not theta_{k-1}, on the rows
whose prompt names no erased concept (docs/method.md, "Repair toward the base").

L_pp and L_replay (method.md, "Losses") hold the new model's noise prediction on a kept prompt where theta_{k-1}
put it, so whatever requests 1..k-1 wore away from a kept concept stays worn away. With the repair, each preserve
and replay row whose prompt names none of the erased concepts (this request's, the earlier targets', their
synonyms) is held where the base theta_0 puts it instead: a later request pulls the eroded concepts back toward
what the base drew. Rows that name an erased concept keep theta_{k-1}'s reference, so they stay erased; so do the
attacker's pairs (adversarial.py), which have no prompt. keep_attn still reads theta_{k-1}: a theta_0 reference
there as well gave the early targets back to the attack (docs/benchmarks.md, "A repair term toward the base").

theta_0 differs from theta_{k-1} only in the modules the earlier adapters wrote. BaseWeights keeps those modules'
weights as the base has them (taken before the merge) and swaps them in for one extra frozen pass on the repaired
rows, with the new adapter off: no second UNet.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

import torch


def erased_words(requests) -> re.Pattern:
    """A whole-word, case-insensitive pattern of every erased concept's name and synonyms."""
    words = sorted({w.lower() for r in requests for w in (r.concept, *r.synonyms) if w.strip()})
    return re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)


def repaired_rows(prompts: list[str], erased: re.Pattern) -> torch.Tensor:
    """(P,) bool: which prompt rows of the training data name no erased concept (they get theta_0's reference)."""
    return torch.tensor([not erased.search(p) for p in prompts], dtype=torch.bool)


class BaseWeights:
    """The base weights of the modules the earlier adapters wrote, and a swap that puts them back for one pass."""

    def __init__(self, unet, names):
        modules = dict(unet.named_modules())
        self.names = sorted(n for n in names if n in modules)
        self.weights = {n: modules[n].weight.detach().clone() for n in self.names}

    @contextmanager
    def swapped(self, unet):
        """theta_0 inside the block (the earlier adapters' merged weights held aside), theta_{k-1} after it."""
        modules = dict(unet.named_modules())
        live = [getattr(modules[n], "base_layer", modules[n]).weight for n in self.names]
        held = [w.data for w in live]
        try:
            for w, n in zip(live, self.names):
                w.data = self.weights[n]
            yield
        finally:
            for w, d in zip(live, held):
                w.data = d


class Repair:
    """What the step needs for the repair: theta_0's weights and, per prompt row, whether it is repaired."""

    SEGMENTS = ("preserve", "replay")

    def __init__(self, base_weights: BaseWeights, rows: torch.Tensor):
        self.base, self.rows = base_weights, rows

    def batch_rows(self, e_ref: list[int], seg: dict) -> list[int]:
        """Rows of this batch in the preserve / replay segments whose prompt is repaired."""
        n = len(self.rows)
        return [r for name in self.SEGMENTS if name in seg for r in range(seg[name].start, seg[name].stop)
                if e_ref[r] < n and bool(self.rows[e_ref[r]])]

    @torch.no_grad()
    def reference(self, s, xt: torch.Tensor, t: torch.Tensor, e_ref: list[int], seg: dict,
                  eps_ref: torch.Tensor) -> torch.Tensor:
        """eps_ref with the repaired rows' predictions replaced by theta_0's on the same x_t, t and prompt."""
        rows = self.batch_rows(e_ref, seg)
        if not rows:
            return eps_ref
        idx = torch.tensor(rows, device=xt.device)
        emb = s.data.emb[[e_ref[r] for r in rows]].to(s.device, s.unet.dtype)
        s.unet.disable_adapters()
        try:
            with s.autocast(), self.base.swapped(s.unet):
                eps0 = s.unet(xt[idx].to(s.unet.dtype), t[idx], encoder_hidden_states=emb).sample.float()
        finally:
            s.unet.enable_adapters()
        out = eps_ref.clone()
        out[idx] = eps0
        return out
