"""Forward hooks on the UNet: collect the output O_l of every cross-attention block (attn2), for L_ca (method.md), or
of every feed-forward block (ff, for L_reg keep_ff)."""
from __future__ import annotations

import torch


class AttentionCapture:
    """Forward hooks that collect the output of every cross-attention block (attn2; or the modules whose name ends
    in `suffix`, such as "ff", the feed-forward block of each transformer block), in call order, while enabled."""

    def __init__(self, unet, suffix: str = "attn2"):
        self.outputs: list[torch.Tensor] = []
        self.enabled = False
        self.handles = [m.register_forward_hook(self._hook) for n, m in unet.named_modules()
                        if n == suffix or n.endswith("." + suffix)]

    def _hook(self, module, inputs, output):
        if self.enabled:
            self.outputs.append(output)

    def take(self, rows: slice) -> list[torch.Tensor]:
        """The collected outputs' rows (per layer: (rows, HW_l, C_l)), and forget them."""
        out, self.outputs = [o[rows] for o in self.outputs], []
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()
