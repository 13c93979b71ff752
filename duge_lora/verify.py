"""Verification: is a composed model the stack it claims to be, and what does the judge read from it?

The invariant (method.md, "Composition"): theta_0 + sum_i w_i Delta_W_i written by compose == the base with the
adapters loaded as live peft adapters by diffusers' own loader, compared on probe inputs. Each output is loaded
with plain diffusers loaders, as a user would.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .errors import AdapterError


@torch.no_grad()
def probe(unet, seed: int = 0, n: int = 2) -> torch.Tensor:
    """The UNet's noise prediction on fixed random inputs (latents, timesteps, text states): a fingerprint of its function."""
    g = torch.Generator().manual_seed(seed)
    c = unet.config
    x = torch.randn(n, c.in_channels, c.sample_size, c.sample_size, generator=g)
    e = torch.randn(n, 16, c.cross_attention_dim, generator=g)
    t = torch.linspace(900, 100, n).long()
    dev, dt = unet.device, unet.dtype
    return unet(x.to(dev, dt), t.to(dev), encoder_hidden_states=e.to(dev, dt)).sample.float().cpu()


def live_stack(base, adapters: list[str], weights: list[float] | None = None) -> None:
    """Load LoRA adapter folders/files with diffusers' loader and activate them all (at `weights`, default 1)."""
    from .records import resolve_adapter

    names = []
    for i, path in enumerate(adapters):
        resolve_adapter(path)          # refuses missing, pickle and corrupt files with a clear message
        name = f"a{i}"
        try:
            with warnings.catch_warnings():   # peft warns on every adapter after the first: stacking is the point
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                base.pipe.load_lora_weights(str(path), adapter_name=name)
        except Exception as exc:  # diffusers raises many kinds for a bad file
            raise AdapterError(f"Could not load the adapter {path}: {str(exc).splitlines()[0]}",
                               "Pass a folder or .safetensors file written by `duge-lora train`.") from exc
        names.append(name)
    if names:
        base.pipe.set_adapters(names, adapter_weights=list(weights or [1.0] * len(names)))


def composed_unet(output: Path, fmt: str, base_source: str, device: torch.device):
    """Load what compose wrote as a UNet, with plain diffusers loaders."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from safetensors.torch import load_file

    from .formats import base_folder

    if fmt == "pipeline":
        return UNet2DConditionModel.from_pretrained(str(output / "unet"), dtype=torch.float32).to(device)
    folder = base_folder(base_source)
    if fmt == "single-file":                                        # as A1111-style files are loaded in diffusers
        pipe = StableDiffusionPipeline.from_single_file(str(output), config=str(folder), dtype=torch.float32,
                                                        local_files_only=True)
        return pipe.unet.to(device)
    if fmt == "unet":
        unet = UNet2DConditionModel.from_pretrained(str(folder / "unet"), dtype=torch.float32)
        unet.load_state_dict({k: v.float() for k, v in load_file(str(output)).items()})
        return unet.to(device)
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), dtype=torch.float32, safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False)
    pipe.load_lora_weights(str(output.parent), weight_name=output.name, adapter_name="composed")   # as a user would
    return pipe.unet.to(device)


@dataclass
class Verification:
    """max |composed - live stack| on probe inputs, and on a base whose world has a judge, its figures."""
    max_abs_diff: float
    judge: dict | None = None
    tolerance: float = 1e-3           # float32 sums differ by ~1e-5; a half-precision device by more
    error: str | None = None          # why diffusers could not load the output back, if it could not

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def problem(self, exact: bool = True) -> str | None:
        """Why the composed model is not the stack it claims to be, or None when it is (`exact`=False for an svd
        truncation, which differs from the stack by design: then only non-finite values are a problem)."""
        if self.error:
            return f"diffusers could not load it back ({self.error})"
        if not math.isfinite(self.max_abs_diff):
            return "the composed model computes NaN or infinite values"
        if exact and self.max_abs_diff > self.tolerance:
            return f"it differs from the live stack by {self.max_abs_diff:.3g} (tolerance {self.tolerance:g})"
        return None


def verify_output(base: str, adapters: list, output: Path, fmt: str, device: torch.device, judge: bool = True,
                  progress=None, mixed_precision: str = "auto") -> Verification:
    """Compare the composed output with base + the live peft stack of `adapters` (compose.Item: adapter, weight);
    where the base's world has a judge, also judge each composed concept's UA and the retain accuracies."""
    from .models import load_base
    from .records import requests_of

    live = load_base(base, str(device), mixed_precision=mixed_precision)
    live_stack(live, [str(i.adapter.path) for i in adapters], [i.weight for i in adapters])
    try:
        composed = composed_unet(output, fmt, live.source, device)
    except Exception as exc:  # noqa: BLE001 - any loader failure means the file does not work where it is meant to
        return Verification(math.inf, error=str(exc).splitlines()[0])
    got = probe(composed)
    diff = float((got - probe(live.pipe.unet)).abs().max()) if torch.isfinite(got).all() else math.inf
    result = Verification(diff, tolerance=1e-3 if live.pipe.unet.dtype == torch.float32 else 2e-2)
    targets = [r for r in requests_of([i.adapter for i in adapters]) if r.axis]
    if judge and live.world.has_judge and targets and result.problem() is None:
        live.pipe.unet = composed                      # the composed model, judged like any other
        r = live.world.evaluate(live, n=1, targets=targets, progress=progress)
        result.judge = {"mean_ua": r.mean_ua, "targets": r.targets, "ua_prev": r.ua_prev, "ira": r.ira, "cra": r.cra, "accuracy": r.accuracy}
    return result
