"""All Delta_W maths of LoRA adapters, computed directly (never peft's A/B mixing). Imports only torch.

method.md, "Composition": theta_k = theta_0 + sum_i w_i Delta_W_i with Delta_W_i = (alpha_i/r_i) B_i A_i
(Hu et al. 2022, eq. 3). peft's linear/ties/dare mix A and B separately and are not this sum.
- the sum of a stack is one product [w_1 s_1 B_1 | ... | w_n s_n B_n] [A_1; ...; A_n] (the exact `cat` LoRA);
- adding it into a base weight has ONE dtype rule, the same for training parents, compose and in-memory
  stacks (add_delta): the sum and the addition in float32, one cast at the point of use: to the live layer's
  dtype in memory, to float32 in a composed file (so a model loaded from it in fp16 is bit for bit the model
  an adapter trained on in fp16, and loaded in fp32 it keeps the exact sum);
- the best rank-r factors of a Delta_W come from its truncated SVD (Eckart-Young).
"""
from __future__ import annotations

import math

import torch

Tensor = torch.Tensor
Part = tuple[Tensor, Tensor, float]      # (A (r, in), B (out, r), scale = weight * alpha / r) of one adapter


def delta_w(a: Tensor, b: Tensor, scaling: float) -> Tensor:
    """Delta_W = scaling * B @ A: (out, r) @ (r, in) -> (out, in), in float32."""
    return scaling * (b.float() @ a.float())


def cat_factors(parts: list[Part]) -> tuple[Tensor, Tensor]:
    """One LoRA of scaling 1 equal to the weighted stack: A = [A_1; ...; A_n], B = [s_1 B_1 | ... | s_n B_n]."""
    a = torch.cat([p[0].float() for p in parts], 0)          # (sum r_i, in)
    b = torch.cat([p[2] * p[1].float() for p in parts], 1)   # (out, sum r_i)
    return a, b


def summed_delta(parts: list[Part], device: torch.device | str = "cpu") -> Tensor:
    """sum_i s_i B_i A_i of one module, float32 on `device`, as the single product B_cat @ A_cat."""
    a, b = cat_factors(parts)
    return b.to(device) @ a.to(device)


def add_delta(weight: Tensor, delta: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """weight + delta with the one dtype rule: added in float32, cast once to `dtype` (default: the weight's),
    on the weight's device."""
    return (weight.to(delta.device, torch.float32) + delta.float()).to(weight.device, dtype or weight.dtype)


@torch.no_grad()
def merge_deltas(modules: dict[str, torch.nn.Module], deltas: dict[str, Tensor]) -> None:
    """Add each Delta_W into the base weight of module `name` in place (a peft-wrapped layer's base_layer)."""
    for name, d in deltas.items():
        layer = getattr(modules[name], "base_layer", modules[name])
        layer.weight.copy_(add_delta(layer.weight, d.to(layer.weight.device)))


def low_rank(delta: Tensor, rank: int, scaling: float = 1.0) -> tuple[Tensor, Tensor, float, float]:
    """Factors (A (r, in), B (out, r)) with scaling * B A the best rank-r approximation of delta, plus the squared
    Frobenius norms of what was dropped and of the whole (their ratio's root is the relative error)."""
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    r = min(rank, len(s))
    root = s[:r].sqrt()
    a = (root[:, None] * vh[:r]).contiguous()
    b = (u[:, :r] * root[None] / scaling).contiguous()
    return a, b, float(s[r:].pow(2).sum()), float(s.pow(2).sum())


def relative_error(dropped: float, total: float) -> float:
    """sqrt(dropped / total): the relative Frobenius error of a truncation (0 for an all-zero delta)."""
    return math.sqrt(dropped / total) if total > 0 else 0.0
