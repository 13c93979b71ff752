"""Pure loss functions of DUGE and its baselines; per-sample where there are samples (the caller reduces).

DUGE (Thakral et al., arXiv 2503.13769) in our adapter form, shared/design/method.md:
  L = l_ca * L_ca + l_pp * L_pp + l_reg * L_reg
  L_ca  = sum_l ||O_l(x_t, c_target; theta_k) - sg O_l(x_t, c_anchor; theta_{k-1})||^2   (+ the same on eps)
  L_pp  = ||eps_theta_k(x_t, c_r) - sg eps_theta_{k-1}(x_t, c_r)||^2         (or DreamBooth: - eps)
          + w_pp_kv sum_m ||Delta W_k E_r^T||^2 / ||W E_r^T||^2   (E_r: the related prompts' token states; ours)
  L_reg = w_drift ||Delta W_k||_F^2 + w_overlap sum_i ||A_k A_i^T||_F^2 / (||A_k||^2 ||A_i||^2)
          + w_replay ||eps_theta_k(x_t, c_g) - sg eps_theta_{k-1}(x_t, c_g)||^2
          + w_keep sum_m ||Delta W_k E_keep^T||^2 / ||W E_keep^T||^2      (our addition, see kv_preservation)
This module imports only torch.
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
    """
    terms = [scaling ** 2 * (b @ (a @ keep.T)).pow(2).sum() / n for (a, b), n in zip(factors, base_norms)]
    return torch.stack(terms).sum()


@dataclass
class StepOutputs:
    """Everything one training step computed; objectives read what they need.

    The batch is three segments, concatenated: anchor (x_0 from X_a, trained under the target prompt, reference
    under the anchor prompt), preserve (X_r) and replay (X_g) (trained and reference under the same prompt).
    """
    eps: Tensor                      # (B, C, H, W) trained model's prediction
    eps_ref: Tensor                  # (B, C, H, W) frozen previous model's prediction (detached)
    noise: Tensor                    # (B, C, H, W) the true noise
    segments: dict[str, slice]       # "anchor" / "preserve" / "replay" -> rows
    attn: list[Tensor] = field(default_factory=list)       # anchor rows, per cross-attention layer
    attn_ref: list[Tensor] = field(default_factory=list)
    factors: list[tuple[Tensor, Tensor]] = field(default_factory=list)  # (A, B) of the new adapter, per module
    prev_a: list[list[Tensor]] = field(default_factory=list)            # earlier adapters' A, per module
    keep: Tensor | None = None                                          # (N, d) text states of prompts to keep
    keep_norms: list[Tensor] = field(default_factory=list)              # ||W E^T||_F^2 per module
    keep_near: Tensor | None = None                                     # (M, d) text states of the preserve prompts
    keep_near_norms: list[Tensor] = field(default_factory=list)
    scaling: float = 1.0
    eps_uncond_ref: Tensor | None = None  # frozen eps with the empty prompt on anchor rows (ESD)
    eps_target_ref: Tensor | None = None  # frozen eps with the target prompt on anchor rows (ESD)


def _seg(x: Tensor, out: StepOutputs, name: str) -> Tensor:
    return x[out.segments[name]]


def duge(out: StepOutputs, w: dict[str, float]) -> dict[str, Tensor]:
    """The DUGE objective: each term unweighted; the trainer applies the weights in `w` (see DEFAULT_WEIGHTS)."""
    terms = {"ca_attn": attention_loss(out.attn, out.attn_ref).mean(),
             "ca_eps": mse_per_sample(_seg(out.eps, out, "anchor"), _seg(out.eps_ref, out, "anchor")).mean()}
    if w.get("pp", 0):
        target = _seg(out.noise if w.get("pp_dreambooth") else out.eps_ref, out, "preserve")
        terms["pp"] = mse_per_sample(_seg(out.eps, out, "preserve"), target).mean()
    if w.get("pp_kv", 0) and out.keep_near is not None:
        terms["pp_kv"] = kv_preservation(out.factors, out.keep_near, out.keep_near_norms, out.scaling)
    if w.get("drift", 0):
        terms["drift"] = drift(out.factors, out.scaling)
    if w.get("overlap", 0) and any(out.prev_a):
        terms["overlap"] = overlap([a for a, _ in out.factors], out.prev_a)
    if w.get("replay", 0):
        terms["replay"] = mse_per_sample(_seg(out.eps, out, "replay"), _seg(out.eps_ref, out, "replay")).mean()
    if w.get("keep", 0) and out.keep is not None:
        terms["keep"] = kv_preservation(out.factors, out.keep, out.keep_norms, out.scaling)
    return terms


def naive(out: StepOutputs, w: dict[str, float]) -> dict[str, Tensor]:
    """Baseline: the unlearning term alone (sequential LoRA fine-tuning, no preservation or regularization)."""
    return {"ca_attn": attention_loss(out.attn, out.attn_ref).mean(),
            "ca_eps": mse_per_sample(_seg(out.eps, out, "anchor"), _seg(out.eps_ref, out, "anchor")).mean()}


def l2sp(out: StepOutputs, w: dict[str, float]) -> dict[str, Tensor]:
    """Baseline: naive + ||Delta_W_k||_F^2 (L2-SP, Li et al. 2018; the CUIG paper's strongest simple regulariser)."""
    return naive(out, w) | {"drift": drift(out.factors, out.scaling)}


def ablate(out: StepOutputs, w: dict[str, float]) -> dict[str, Tensor]:
    """Baseline: Concept Ablation, model-based (Kumari et al. 2023, eq. 3):
    ||eps_theta(x_t, c_target) - sg eps_theta_{k-1}(x_t, c_anchor)||^2, on the noise prediction only."""
    return {"ca_eps": mse_per_sample(_seg(out.eps, out, "anchor"), _seg(out.eps_ref, out, "anchor")).mean()}


def esd(out: StepOutputs, w: dict[str, float]) -> dict[str, Tensor]:
    """Baseline: ESD-x (Gandikota et al. 2023, eq. 7): eps_theta(x_t, c) -> eps_0(x_t) - eta (eps_0(x_t, c) - eps_0(x_t)),
    eps_0 the frozen previous model, c the target prompt, eta = w["esd_eta"] (default 1)."""
    eta = w.get("esd_eta", 1.0)
    target = out.eps_uncond_ref - eta * (out.eps_target_ref - out.eps_uncond_ref)
    return {"esd": mse_per_sample(_seg(out.eps, out, "anchor"), target).mean()}


@dataclass(frozen=True)
class Objective:
    fn: Callable[[StepOutputs, dict], dict[str, Tensor]]
    segments: tuple[str, ...]        # which data segments the step must compute
    weights: dict = field(default_factory=dict)    # default weight per term
    extra_refs: tuple[str, ...] = ()  # frozen passes on anchor rows besides the anchor prompt: "target", "uncond"


# drift and overlap are off by default: in the 2026-11-29 bench they cost erasure of the later requests (the overlap
# term pushes adapter k out of the 4(k-1) directions the earlier adapters read, in a 64-d text space) and bought no
# measurable retention (docs/benchmarks.md); ca_eps 3 lets the noise-prediction term, ~10x smaller than the attention
# term, steer the update (10 erased as much and eroded more).
DEFAULT_WEIGHTS = {"ca_attn": 1.0, "ca_eps": 3.0, "pp": 1.0, "pp_kv": 1.0, "drift": 0.0, "overlap": 0.0, "replay": 1.0,
                   "keep": 1.0}

# the trainer's registry: a baseline is one more entry here, the loop does not change
OBJECTIVES: dict[str, Objective] = {
    "duge": Objective(duge, ("anchor", "preserve", "replay"), dict(DEFAULT_WEIGHTS)),
    # naive and l2sp use DUGE's own unlearning term (same weights), so they differ from it only by what they leave out
    "naive": Objective(naive, ("anchor",), {t: DEFAULT_WEIGHTS[t] for t in ("ca_attn", "ca_eps")}),
    "l2sp": Objective(l2sp, ("anchor",), {t: DEFAULT_WEIGHTS[t] for t in ("ca_attn", "ca_eps")} | {"drift": 1e-2}),
    "ablate": Objective(ablate, ("anchor",), {"ca_eps": 1.0}),
    "esd": Objective(esd, ("anchor",), {"esd": 1.0, "esd_eta": 1.0}, extra_refs=("target", "uncond")),
}


def total(terms: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
    """sum_term weight * term (terms without a weight count 0)."""
    return sum(weights.get(k, 0.0) * v for k, v in terms.items())
