"""UCE, Unified Concept Editing (Gandikota et al. 2024, eq. 5), as a baseline: a closed-form edit of the
cross-attention key/value maps, written as a LoRA by truncated SVD. No training.

For each adapted map W (attn2.to_k / to_v, which read the text states directly) it solves
    min_W'  sum_n ||W' c_n - W a_n||^2 + lambda sum_m ||W' p_m - W p_m||^2
with c_n the token states of the target prompts, a_n those of their paired anchor prompts (same position)
and p_m those of every prompt to keep:  W' = W (A^T C + lambda P^T P) (C^T C + lambda P^T P + eps I)^-1,
rows of C, A, P being token states. Delta_W = W' - W is truncated to the adapter's rank (Eckart-Young).
Pure torch.
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


def low_rank(delta: torch.Tensor, rank: int, scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """LoRA factors (A (r, in), B (out, r)) with scaling * B A the best rank-r approximation of delta."""
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    root = s[:rank].sqrt()
    return (root[:, None] * vh[:rank]).contiguous(), (u[:, :rank] * root[None] / scaling).contiguous()
