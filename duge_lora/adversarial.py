"""DUGE's robust option: adversarial rounds during training (AdvUnlearn style), so that the erased concept is hard
to bring back with a learned word (attack.py; Pham et al. 2023).

AdvUnlearn (Zhang et al. 2024, eq. 4) trains the erasure against the attack's best prompt in an inner loop. Here,
at `rounds` evenly spaced steps of a request, the attack itself (textual inversion, attack.learn_embeddings) runs
on the model being trained, from theta_{k-1}'s images of the concept; the learned word then joins the target
prompts: every target prompt, the concept's word replaced by the learned one, is paired with its anchor prompt
and erased by the same cross-attention losses as the concept's own words (method.md, "Robust erasure").

Why the preset also adapts `to_out` and the feed-forward output `ff` (measured, docs/benchmarks.md "What was tried
for the defence"): with an adapter of to_k/to_v alone the attack finds another word that draws the concept
(recovered 100% with or without rounds; method.md gives our reading of why). With to_out adapted the rounds lower
recovery, but every weighting of it traded erosion for recovery along one line. The feed-forward output of the same
transformer blocks moved that line: it gives the rounds room to erase beyond the attention output, and keep_attn
(losses.py) at 15 then holds the preserve and replay prompts' cross-attention outputs where theta_{k-1} put them.
The preservation terms pp, replay and keep weigh 5.

Why the preset holds those terms toward the base (repair.py) and adapts ff below full resolution only (ff-low;
docs/benchmarks.md "The feed-forward edit below full resolution, as the preset"): over ten requests, the preset with
ff in every block wore away 5.8 +- 4.2 points of the default sequence's other concepts and left its last target,
yellow, 75-89% erased. The repair pulls what earlier requests wore away back toward theta_0 (erosion 1.9 +- 1.3);
leaving the feed-forward edit out of the full-resolution blocks too gives 1.1 +- 0.5, every target at least 89.7%
erased, at about the same recovery (21.5 +- 3.7%). Keeping ff in those blocks alone eroded as little but gave the
attacker 32.9% (one seed).

Why the replay set keeps its clean prompts and 90% of the anchor rows come from the request's own pairs
(TrainConfig.clean_replay, own_share; docs/benchmarks.md "The share of the request's own pairs"): the repair acts
only on prompts that name no erased concept, and a replay set sampled as a whole keeps few of them late in a chain.
Keeping them all lowered the erosion but let yellow, the default sequence's last target, stay drawn (71-79% erased)
while the attacker's pairs were most of its anchor rows. With 0.9 every chain of both sequences kept the chain's
figures (erosion 0.0 +- 0.0 and 0.5 +- 0.5, every target at least 97.9% erased), at 23.5 +- 3.1% and 18.3 +- 1.5%
recovered.
"""
from __future__ import annotations

import re
from dataclasses import replace

import torch


ROUNDS = 4                                     # adversarial rounds per request (at 20/40/60/80% of the steps)
TARGETS = ("k", "v", "out", "ff-low")         # the preset's adapted maps (ff-low: adapter.BY_BLOCK)
WEIGHTS = {"pp": 5.0, "replay": 5.0, "keep": 5.0, "keep_attn": 15.0}
ATTACK_STEPS = 150                             # the inner attack's budget: the bench's attack
TOKENS = 2
OWN_SHARE = 0.9                                # anchor rows from the request's own pairs after the rounds (trainset.anchor_pairs)


def robust_preset(cfg, targets_given: bool = False, weights_given: dict | None = None, repair_given: bool = False):
    """cfg with the robust preset: ROUNDS adversarial rounds, to_out and ff below full resolution adapted too (unless
    targets were given), the preservation weights raised (a weight given by the user wins), the repair toward theta_0
    on (unless the user chose) and with it the replay set's clean prompts kept first (TrainConfig.clean_replay: they
    are the rows the repair acts on), and OWN_SHARE of each batch's anchor rows drawn from the request's own pairs
    once the rounds have added theirs (TrainConfig.own_share, unless already set; docs/benchmarks.md, "The share of
    the request's own pairs")."""
    from .adapter import LoraSpec
    from .losses import DEFAULT_WEIGHTS

    lora = cfg.lora if targets_given else LoraSpec(rank=cfg.lora.rank, alpha=cfg.lora.alpha, targets=TARGETS)
    repair = cfg.repair if repair_given else True
    return replace(cfg, adversarial=cfg.adversarial or ROUNDS, lora=lora, repair=repair, clean_replay=repair,
                   weights={**DEFAULT_WEIGHTS, **WEIGHTS, **(weights_given or {})}, own_share=cfg.own_share or OWN_SHARE)


def schedule(steps: int, rounds: int) -> list[int]:
    """The steps before which a round runs: evenly spaced, never step 0 (the adapter must first erase the words)."""
    return sorted({max(1, round(steps * (i + 1) / (rounds + 1))) for i in range(rounds)})


class Adversary:
    """The inner attack of one request: theta_{k-1}'s images of the concept (made at the first round, with the
    new adapter switched off), the attack's placeholder words, and the adversarial pairs added so far."""

    def __init__(self, base, req, cfg, cache=None):
        from .attack_plan import request_plan

        self.plan = request_plan(base, req)                 # the concept's prompts (scenes, or templates)
        self.base, self.req, self.cfg, self.cache = base, req, cfg, cache
        self.at = schedule(cfg.steps, cfg.adversarial)
        self.x0: torch.Tensor | None = None
        self.added: list[tuple[int, int, int]] = []          # pairs added to the data, in order
        self.states = torch.zeros(0)                         # their prompts' text states (rows appended to emb)

    def _latents(self, unet) -> torch.Tensor:
        from .attack import concept_latents

        unet.disable_adapters()                              # theta_{k-1}: the model before this request
        try:
            return concept_latents(self.base, self.plan, self.cfg.seed, self.cache)
        finally:
            unet.enable_adapters()

    def round(self, s, step: int, check=None) -> None:
        """Attack the model as trained so far; add the learned word's target prompts to the erased pairs. `check()`
        (interrupts.step_boundaries) runs after every attack step, so Ctrl-C stops a round at once: the pairs are
        added only at its end, and a resumed run repeats the round."""
        from .attack import AttackConfig, add_placeholders, learn_embeddings, placeholder_words
        from .trainset import encode_prompts

        unet = s.step.unet
        was_training = unet.training
        if self.x0 is None:
            self.x0 = self._latents(unet)
        ids = add_placeholders(self.base.pipe, TOKENS)
        word = " ".join(placeholder_words(TOKENS))
        learn_embeddings(self.base, self.x0, self.plan.with_word(word), ids,  # the attack itself (attack.attack_once)
                         AttackConfig(steps=ATTACK_STEPS, tokens=TOKENS, seed=self.cfg.seed + step),
                         progress=(lambda done, total: check()) if check else None)
        prompts, pairs = self._prompts(s.step.data)
        for p in s.params:                                   # the attack froze the UNet; the adapter trains on
            p.requires_grad_(True)
        unet.train(was_training)
        self._add(s.step.data, encode_prompts(self.base, prompts), pairs)

    def _prompts(self, data) -> tuple[list[str], list[tuple[int, int]]]:
        """Every target prompt of the request with its words replaced by the placeholders, and its pair's
        (anchor latent row, anchor states row)."""
        from .attack import placeholder_words

        sets = self.base.world.prompt_sets(self.req, [], self.cfg.seed)
        anchor_row = {p: i for i, p in enumerate(data.anchor_prompts)}
        ref_row = {a: r for a, _, r in data.pairs[:len(data.pairs) - len(self.added)]}
        words = [self.req.concept, *self.req.synonyms]
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b")
        word = " ".join(placeholder_words(TOKENS))
        prompts, pairs = [], []
        for t, a in zip(sets.target, sets.anchor):
            if a in anchor_row and anchor_row[a] in ref_row:
                prompts.append(pattern.sub(word, t))
                pairs.append((anchor_row[a], ref_row[anchor_row[a]]))
        return prompts, pairs

    def _add(self, data, states: torch.Tensor, pairs: list[tuple[int, int]]) -> None:
        first = len(data.emb)
        data.emb = torch.cat([data.emb, states.to(data.emb)])
        new = [(lat, first + i, ref) for i, (lat, ref) in enumerate(pairs)]
        data.pairs = data.pairs + new
        self.added += new
        self.states = torch.cat([self.states.to(states), states]) if len(self.states) else states

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps of the rounds so far (so a resumed run continues with the same pairs)."""
        if not self.added:
            return {}
        return {"adv.states": self.states.contiguous(), "adv.pairs": torch.tensor(self.added, dtype=torch.int64)}

    def restore(self, data, tensors: dict[str, torch.Tensor]) -> None:
        """Put back the pairs of the rounds a checkpoint saw (their rows relative to the data's own)."""
        if "adv.states" in tensors:            # one state row per added pair, in order (as _add appended them)
            self._add(data, tensors["adv.states"], [(a, r) for a, _, r in tensors["adv.pairs"].tolist()])
