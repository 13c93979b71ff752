"""Merge maths: Delta_W of LoRA adapters, computed directly (never peft's A/B mixing).

method.md, "Composition": theta_k = theta_0 + sum_i w_i Delta_W_i with Delta_W_i = (alpha_i/r_i) B_i A_i
(Hu et al. 2022, eq. 3). peft's linear/ties/dare mix A and B separately and are not this sum.
"""
from __future__ import annotations

import torch


def delta_w(a: torch.Tensor, b: torch.Tensor, scaling: float) -> torch.Tensor:
    """Delta_W = scaling * B @ A: (out, r) @ (r, in) -> (out, in), in float32."""
    return scaling * (b.float() @ a.float())


@torch.no_grad()
def merge_into(unet, adapters, weights: list[float] | None = None) -> None:
    """Add sum_i w_i Delta_W_i of each adapter (adapter.Adapter) into the UNet's base weights, in place."""
    modules = dict(unet.named_modules())
    weights = weights or [1.0] * len(adapters)
    for adapter, w in zip(adapters, weights):
        for name, (a, b) in adapter.weights.items():
            layer = getattr(modules[name], "base_layer", modules[name])
            d = delta_w(a.to(layer.weight.device), b.to(layer.weight.device), adapter.spec.scaling)
            layer.weight.add_((w * d).to(layer.weight.dtype))
