"""Pure loss terms of DUGE and its baselines, and the objective registry. Imports only torch.

DUGE (Thakral et al., arXiv 2503.13769) in our adapter form, shared/design/method.md:
  L = l_ca * L_ca + l_pp * L_pp + l_reg * L_reg
  L_ca  = sum_l ||O_l(x_t, c_target; theta_k) - sg O_l(x_t, c_anchor; theta_{k-1})||^2   (+ the same on eps)
  L_pp  = ||eps_theta_k(x_t, c_r) - sg eps_theta_{k-1}(x_t, c_r)||^2         (or DreamBooth: - eps)
          + w_pp_kv sum_m ||Delta W_k E_r^T||^2 / ||W E_r^T||^2   (E_r: the related prompts' token states; ours)
  L_reg = w_drift ||Delta W_k||_F^2 + w_overlap sum_i ||A_k A_i^T||_F^2 / (||A_k||^2 ||A_i||^2)
          + w_replay ||eps_theta_k(x_t, c_g) - sg eps_theta_{k-1}(x_t, c_g)||^2
          + w_keep sum_m ||Delta W_k E_keep^T||^2 / ||W E_keep^T||^2      (our addition, see kv_preservation)
          + w_protect, the same on the earlier targets' prompts with their synonyms (ours: keeps them erased)
          + w_keep_attn sum_l ||O_l(x_t, c_g; theta_k) - sg O_l(x_t, c_g; theta_{k-1})||^2  (ours; 0 by default)
          + w_keep_ff sum_l ||F_l(x_t, c_g; theta_k) - sg F_l(x_t, c_g; theta_{k-1})||^2  (the same on the
            feed-forward blocks' outputs F_l; ours, 0 by default)
Terms over samples are returned per sample, (B,); the caller reduces them (reduce_terms). A term is one entry of
TERMS (its function and DUGE's default weight); a baseline is one entry of OBJECTIVES.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

Tensor = torch.Tensor


def mse_per_sample(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared error per sample: (B, ...) x (B, ...) -> (B,)."""
    return (a.float() - b.float()).pow(2).flatten(1).mean(1)


def attention_loss(attn: list[Tensor], attn_ref: list[Tensor]) -> Tensor:
    """Cross-attention loss (method.md, L_ca): per-sample MSE of each layer's attention output, summed over layers.

    attn[l]: (B, HW_l, C_l) outputs of cross-attention layer l of the trained model under the target prompt;
    attn_ref[l]: the frozen previous model's outputs under the anchor prompt (already detached).
    """
    return torch.stack([mse_per_sample(o, r) for o, r in zip(attn, attn_ref)]).sum(0)


def lowrank_frobenius_sq(a: Tensor, b: Tensor, scaling: float) -> Tensor:
    """||scaling * B A||_F^2 = scaling^2 trace((B^T B)(A A^T)), without forming B A (r x r products only)."""
    return scaling ** 2 * torch.trace((b.T @ b) @ (a @ a.T))


def drift(factors: list[tuple[Tensor, Tensor]], scaling: float) -> Tensor:
    """L_reg drift: sum over adapted modules of ||Delta W_k||_F^2 (the L2-SP penalty on the update)."""
    return torch.stack([lowrank_frobenius_sq(a, b, scaling) for a, b in factors]).sum()


def overlap(a_new: list[Tensor], a_prev: list[list[Tensor]], eps: float = 1e-12) -> Tensor:
    """L_reg overlap: sum over modules and earlier adapters i of ||A_k A_i^T||_F^2 / (||A_k||_F^2 ||A_i||_F^2).

    Each ratio lies in [0, 1] (0 when the row spaces are orthogonal), so adapter k is pushed into a subspace of
    the text-embedding space that the earlier adapters do not read. a_prev[m] lists the earlier A_i of module m.
    """
    terms = [(a @ p.T).pow(2).sum() / (a.pow(2).sum() * p.pow(2).sum() + eps)
             for a, prevs in zip(a_new, a_prev) for p in prevs]
    return torch.stack(terms).sum() if terms else a_new[0].new_zeros(())


def kv_preservation(factors: list[tuple[Tensor, Tensor]], keep: Tensor, base_norms: list[Tensor], scaling: float) -> Tensor:
    """L_reg keep: relative change of the keys/values of every token of the prompts to keep,
    sum over modules of ||scaling B A E^T||_F^2 / ||W E^T||_F^2 (E: (N, d) text states; only r x N products).

    The adapted maps read the text states directly (K = W_k e, V = W_v e), so this is exactly how much adapter k
    moves the cross-attention keys and values of non-target prompts; 0 means they are untouched.
    Modules that do not read the text states (to_q, to_out: their norm is None) have no keys/values to keep.
    """
    terms = [scaling ** 2 * (b @ (a @ keep.T)).pow(2).sum() / n for (a, b), n in zip(factors, base_norms) if n is not None]
    return torch.stack(terms).sum() if terms else keep.new_zeros(())


# ----------------------------------------------------------------------------- what one training step computed
@dataclass
class Predictions:
    """Noise predictions on one batch of three concatenated segments: anchor (x_0 from X_a, trained under the
    target prompt, reference under the anchor prompt), preserve (X_r) and replay (X_g) (both under one prompt)."""
    eps: Tensor                      # (B, C, H, W) trained model's prediction
    eps_ref: Tensor                  # (B, C, H, W) frozen previous model's prediction (detached)
    target: Tensor                   # (B, C, H, W) what a model trained on x_t must predict: the true noise, or for a
                                     # v-prediction base the velocity alpha_t noise - sigma_t x_0 (regression_target)
    segments: dict[str, slice]       # "anchor" / "preserve" / "replay" -> rows (a segment without data is absent)
    uncond_ref: Tensor | None = None  # frozen eps with the empty prompt on anchor rows (ESD)
    target_ref: Tensor | None = None  # frozen eps with the target prompt on anchor rows (ESD)

    def seg(self, x: Tensor, name: str) -> Tensor:
        return x[self.segments[name]]

    def has(self, name: str) -> bool:
        """Whether this batch has rows of a segment (a request without a preserve set has none)."""
        return name in self.segments


@dataclass
class KeepStates:
    """Text token states whose keys/values must not move, and ||W E^T||_F^2 of each module on them."""
    states: Tensor                   # (N, d)
    norms: list[Tensor | None]       # per adapted module (None: it does not read the text states)


@dataclass
class StepOutputs:
    """Everything one training step computed, grouped; loss terms read what they need."""
    pred: Predictions
    attn: list[Tensor] = field(default_factory=list)       # anchor rows, per cross-attention layer
    attn_ref: list[Tensor] = field(default_factory=list)
    factors: list[tuple[Tensor, Tensor]] = field(default_factory=list)  # (A, B) of the new adapter, per module
    scaling: float = 1.0
    prev_a: list[list[Tensor]] = field(default_factory=list)            # earlier adapters' A, per module
    keep: KeepStates | None = None   # every prompt to keep (preserve + replay + the world's other prompts)
    keep_near: KeepStates | None = None   # the preserve prompts alone (related concepts, anchor excluded)
    protect: KeepStates | None = None     # the earlier targets' prompts, synonyms too (kept as theta_{k-1} erased them)
    attn_keep: list[Tensor] = field(default_factory=list)      # preserve + replay rows, per cross-attention layer
    attn_keep_ref: list[Tensor] = field(default_factory=list)  # (only computed when keep_attn weighs > 0)
    ff_keep: list[Tensor] = field(default_factory=list)        # the same rows, per feed-forward block
    ff_keep_ref: list[Tensor] = field(default_factory=list)    # (only computed when keep_ff weighs > 0)


def _pp(o: StepOutputs, w: dict) -> Tensor | None:
    """L_pp (method.md): the preserve rows stay where theta_{k-1} put them; with pp_dreambooth, DreamBooth's form
    (Ruiz et al. 2023, eq. 2) toward the true regression target instead (the noise, or v on a v-prediction base)."""
    p = o.pred
    if not p.has("preserve"):
        return None
    return mse_per_sample(p.seg(p.eps, "preserve"), p.seg(p.target if w.get("pp_dreambooth") else p.eps_ref, "preserve"))


def _replay(o: StepOutputs, w: dict) -> Tensor | None:
    p = o.pred
    return mse_per_sample(p.seg(p.eps, "replay"), p.seg(p.eps_ref, "replay")) if p.has("replay") else None


def regression_target(scheduler, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """What the UNet is trained to predict at x_t = add_noise(x0, noise, t): the noise for an epsilon base, the
    velocity v = alpha_t noise - sigma_t x0 (Salimans & Ho 2022, eq. 8; the scheduler's get_velocity) for a
    v-prediction base such as SD 2.x at 768 px, x0 itself for a sample-prediction base."""
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    if kind == "sample":
        return x0
    raise ValueError(f"unknown prediction_type {kind!r}")


def _esd(o: StepOutputs, w: dict) -> Tensor:
    """ESD-x (Gandikota et al. 2023, eq. 7): eps_theta(x_t, c) -> eps_0(x_t) - eta (eps_0(x_t, c) - eps_0(x_t))."""
    p, eta = o.pred, w.get("esd_eta", 1.0)
    return mse_per_sample(p.seg(p.eps, "anchor"), p.uncond_ref - eta * (p.target_ref - p.uncond_ref))


def _keep_attn(o: StepOutputs, w: dict) -> Tensor | None:
    """L_reg keep_attn (ours; the robust option): the preserve and replay rows' cross-attention outputs stay where
    theta_{k-1} put them, the same per-layer MSE as L_ca with the prompt unchanged. The key/value terms cannot see
    a to_out or to_q adapter (it reads image features, not the text states); this term does, layer by layer."""
    return attention_loss(o.attn_keep, o.attn_keep_ref) if o.attn_keep else None


def _keep_ff(o: StepOutputs, w: dict) -> Tensor | None:
    """L_reg keep_ff (ours; the robust option): _keep_attn's per-layer MSE on the feed-forward blocks' outputs, so
    that an adapter of ff.net.2 leaves the preserve and replay prompts' features where theta_{k-1} put them."""
    return attention_loss(o.ff_keep, o.ff_keep_ref) if o.ff_keep else None


def _kv(keep: KeepStates | None, o: StepOutputs) -> Tensor | None:
    return None if keep is None else kv_preservation(o.factors, keep.states, keep.norms, o.scaling)


@dataclass(frozen=True)
class Term:
    """One loss term: a function of the step's outputs and the weights (per sample, or a scalar; None when it
    does not apply to this step), DUGE's default weight for it, and the extra frozen passes on the anchor rows
    ("target": under the trained prompt, "uncond": the empty prompt) it reads."""
    fn: Callable[[StepOutputs, dict], Tensor | None]
    weight: float
    refs: tuple[str, ...] = ()


# DUGE's terms, in the order they are summed. drift and overlap weigh 0 by default: in the 2026-11-29 bench they
# cost erasure of the later requests (the overlap term pushes adapter k out of the 4(k-1) directions the earlier
# adapters read, in a 64-d text space) and bought no measurable retention (docs/benchmarks.md); ca_eps 3 lets the
# noise-prediction term, ~10x smaller than the attention term, steer the update (10 erased as much, eroded more).
TERMS: dict[str, Term] = {
    "ca_attn": Term(lambda o, w: attention_loss(o.attn, o.attn_ref), 1.0),
    "ca_eps": Term(lambda o, w: mse_per_sample(o.pred.seg(o.pred.eps, "anchor"), o.pred.seg(o.pred.eps_ref, "anchor")), 3.0),
    "pp": Term(_pp, 1.0),
    "pp_kv": Term(lambda o, w: _kv(o.keep_near, o), 1.0),
    "drift": Term(lambda o, w: drift(o.factors, o.scaling), 0.0),
    "overlap": Term(lambda o, w: overlap([a for a, _ in o.factors], o.prev_a) if any(o.prev_a) else None, 0.0),
    "replay": Term(_replay, 1.0),
    "keep": Term(lambda o, w: _kv(o.keep, o), 1.0),
    "protect": Term(lambda o, w: _kv(o.protect, o), 1.0),
    "keep_attn": Term(_keep_attn, 0.0),
    "keep_ff": Term(_keep_ff, 0.0),
    "esd": Term(_esd, 0.0, refs=("target", "uncond")),
}
DEFAULT_WEIGHTS = {name: t.weight for name, t in TERMS.items() if name != "esd"}
# what `--weight NAME=VALUE` accepts: every term, and the parameters some terms and methods read (ESD's eta, the
# DreamBooth form of L_pp as 0/1, UCE's lambda in uce.py)
WEIGHT_NAMES = (*TERMS, "esd_eta", "pp_dreambooth", "uce_lambda")


@dataclass(frozen=True)
class Objective:
    """A training method: its weights (the terms it uses, and parameters such as esd_eta), the data segments the
    step must compute, and where adapter k
    starts ("zero": B = 0, exactly theta_{k-1}; "uce": the closed-form UCE edit of theta_{k-1}, uce.py)."""
    weights: dict
    segments: tuple[str, ...] = ("anchor",)
    init: str = "zero"


_UNLEARN = {t: DEFAULT_WEIGHTS[t] for t in ("ca_attn", "ca_eps")}
# the trainer's registry: a baseline is one more entry here, the loop does not change. naive and l2sp use DUGE's
# own unlearning term (same weights), so they differ from it only by what they leave out.
OBJECTIVES: dict[str, Objective] = {
    "duge": Objective(dict(DEFAULT_WEIGHTS), ("anchor", "preserve", "replay"), init="uce"),
    "naive": Objective(dict(_UNLEARN)),                                        # sequential LoRA fine-tuning
    "l2sp": Objective(_UNLEARN | {"drift": 1e-2}),                             # + L2-SP (Li et al. 2018)
    "ablate": Objective({"ca_eps": 1.0}),                                      # Concept Ablation (Kumari et al. 2023, eq. 3)
    "esd": Objective({"esd": 1.0, "esd_eta": 1.0}),                          # ESD-x (Gandikota et al. 2023)
}


def extra_refs(weights: dict[str, float]) -> tuple[str, ...]:
    """The extra frozen passes the weighted terms read (ESD's, on any method that weighs esd)."""
    return tuple(dict.fromkeys(r for name, t in TERMS.items() if weights.get(name, 0) for r in t.refs))


def terms_of(out: StepOutputs, weights: dict[str, float]) -> dict[str, Tensor]:
    """Every term with a non-zero weight that applies to this step, per sample or scalar (unreduced)."""
    terms = {}
    for name, term in TERMS.items():
        if weights.get(name, 0):
            value = term.fn(out, weights)
            if value is not None:
                terms[name] = value
    return terms


def reduce_terms(terms: dict[str, Tensor]) -> dict[str, Tensor]:
    """The caller's reduction: the mean over samples of each term (a scalar term stays as it is)."""
    return {k: v.mean() if v.dim() else v for k, v in terms.items()}


def total(terms: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """sum_term weight * term (terms without a weight count 0)."""
    return sum(weights.get(k, 0.0) * v for k, v in terms.items())
