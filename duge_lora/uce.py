"""UCE, Unified Concept Editing (Gandikota et al. 2024, eq. 5), as a baseline: a closed-form edit of the
cross-attention key/value maps, written as a LoRA by truncated SVD. No training.

For each adapted map W (attn2.to_k / to_v, which read the text states directly) it solves
    min_W'  sum_n ||W' c_n - W a_n||^2 + lambda sum_m ||W' p_m - W p_m||^2
with c_n the token states of the target prompts, a_n those of their paired anchor prompts (same position)
and p_m those of every prompt to keep:  W' = W (A^T C + lambda P^T P) (C^T C + lambda P^T P + eps I)^-1,
rows of C, A, P being token states. Delta_W = W' - W is truncated to the adapter's rank (Eckart-Young,
merge.low_rank). uce_delta is pure torch; train_uce drives it on theta_{k-1} like any training method.
"""
from __future__ import annotations

import torch


def uce_delta(w: torch.Tensor, c: torch.Tensor, a: torch.Tensor, p: torch.Tensor, lam: float = 1.0,
              eps: float = 1e-4) -> torch.Tensor:
    """Delta_W (out, d) of UCE for W (out, d); c, a: (N, d) paired target/anchor states; p: (M, d) states to keep."""
    w, c, a, p = (x.double() for x in (w, c, a, p))
    eye = torch.eye(w.shape[1], dtype=w.dtype, device=w.device)
    lhs = c.T @ c + lam * p.T @ p + eps * eye
    rhs = a.T @ c + lam * p.T @ p
    return (w @ torch.linalg.solve(lhs, rhs.T).T - w).float()


@torch.no_grad()
def uce_factors(base, req, earlier: list, lora, seed: int = 0, lam: float = 1.0) -> tuple[dict, dict]:
    """The UCE edit of every adapted map of the base's UNet as it is now (theta_{k-1}) that reads the text states
    (to_k, to_v), as LoRA factors of the `lora` shape: (module -> (A, B), info). to_q and to_out read the image
    features, which UCE does not edit: they are left out. Used by the UCE baseline and as DUGE's starting point."""
    from .adapter import reads_text, target_names
    from .merge import low_rank, relative_error
    from .trainset import encode_prompts

    unet = base.pipe.unet
    sets = base.world.prompt_sets(req, earlier, seed)
    c = encode_prompts(base, sets.target).flatten(0, 1)            # (N, d) target token states
    a = encode_prompts(base, sets.anchor).flatten(0, 1)            # (N, d) paired anchor token states
    p = encode_prompts(base, sorted(set(sets.preserve) | set(sets.replay) | set(sets.keep))).flatten(0, 1)
    modules, weights, err = dict(unet.named_modules()), {}, []
    for name in target_names(unet, lora):
        layer = getattr(modules[name], "base_layer", modules[name])
        w = layer.weight.float()
        if not reads_text(name):                      # to_q / to_out: not a map of the text states
            continue
        a_k, b_k, dropped, total = low_rank(uce_delta(w, c.to(w.device), a.to(w.device), p.to(w.device), lam),
                                            lora.rank, lora.scaling)
        weights[name] = (a_k, b_k)
        err.append(relative_error(dropped, total))
    return weights, {"target_tokens": len(c), "keep_tokens": len(p), "svd_relative_error_max": round(max(err), 6)}


@torch.no_grad()
def train_uce(base, req, parents: list, cfg, output):
    """The UCE baseline as a training method: the edit of every adapted map of theta_{k-1} in closed form, written
    as a LoRA of cfg.lora's shape (train.train_adapter dispatches here; no steps, no data generation)."""
    import time

    from .adapter import target_names
    from .memory import peak_memory_mb
    from .train import previous_model, save
    from .train_record import make_record

    t0 = time.time()
    base_fp, earlier = previous_model(base, parents, cfg.lora)
    lam = cfg.loss_weights().get("uce_lambda", 1.0)
    weights, info = uce_factors(base, req, earlier, cfg.lora, cfg.seed, lam)
    modules = dict(base.pipe.unet.named_modules())
    for name in target_names(base.pipe.unet, cfg.lora):     # to_q / to_out: UCE leaves them as they are
        if name not in weights:
            w = getattr(modules[name], "base_layer", modules[name]).weight
            weights[name] = (w.new_zeros(cfg.lora.rank, w.shape[1]), w.new_zeros(w.shape[0], cfg.lora.rank))
    record = make_record(base, req, parents, cfg, base_fp, [], time.time() - t0, info)
    record.loss_weights = {"uce_lambda": lam}
    record.peak_mb = peak_memory_mb(base.device)
    save(output, weights, cfg.lora, record)
    return record
