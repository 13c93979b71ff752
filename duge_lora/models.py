"""Load a base text-to-image model: the embedded toy model, a local diffusers folder, or a Hub id.

Every base is a real diffusers StableDiffusionPipeline, so every later code path (LoRA on
`attn2.to_k/to_v`, sampling, composing) is the one Stable Diffusion 1.x/2.x uses.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import toy
from .errors import BaseNotFound, DugeError, UnknownWords
from .toy import world

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DIFFUSERS_SAMPLER = {"guidance_scale": 7.5, "num_inference_steps": 50}


@dataclass
class Base:
    """A loaded base pipeline and what we know about it."""
    name: str                 # as the user gave it: "toy", a path, or a Hub id
    source: str               # the folder or Hub id it was loaded from
    pipe: object              # diffusers.StableDiffusionPipeline
    toy_world: bool           # speaks the toy world's vocabulary (the judge and vocab checks apply)
    sampler: dict = field(default_factory=lambda: dict(DIFFUSERS_SAMPLER))

    @property
    def device(self) -> torch.device:
        return self.pipe.unet.device


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_base(base: str) -> tuple[str, bool]:
    """Map --base to (folder or Hub id, is_hub); raise BaseNotFound for what cannot be a base."""
    if base == "toy":
        if not (toy.PIPELINE_DIR / "model_index.json").exists():
            raise BaseNotFound(f"The embedded toy model is missing from {toy.PIPELINE_DIR}.",
                               "Reinstall duge-lora, or rebuild it with `duge-lora toy build`.")
        return str(toy.PIPELINE_DIR), False
    path = Path(base).expanduser()
    if path.exists():
        if not (path / "model_index.json").exists():
            raise BaseNotFound(f"{base} is not a diffusers pipeline folder (it has no model_index.json).",
                               "Point --base at a folder written by save_pretrained, 'toy', or a Hub id.")
        return str(path), False
    if HUB_ID.match(base):
        return base, True
    raise BaseNotFound(f"The base {base!r} is neither 'toy', an existing folder, nor a Hub id like 'org/name'.",
                       "Check the path, or use --base toy.")


def load_base(base: str = "toy", device: str = "auto", dtype: torch.dtype | None = None) -> Base:
    """Load a StableDiffusionPipeline for --base on a device (fp32 on CPU, fp16 on GPU by default)."""
    from diffusers import StableDiffusionPipeline

    source, is_hub = resolve_base(base)
    dev = pick_device(device)
    dtype = dtype or (torch.float16 if dev.type == "cuda" else torch.float32)
    kwargs = dict(dtype=dtype, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    bars = [(lib, lib.is_progress_bar_enabled()) for lib in (dlog, tlog)]
    for lib, _ in bars:
        lib.disable_progress_bar()        # the library never prints; callers show their own progress
    try:
        pipe = StableDiffusionPipeline.from_pretrained(source, **kwargs)
    except (OSError, ValueError, EnvironmentError) as exc:
        where = "the Hub" if is_hub else source
        raise BaseNotFound(f"Could not load the base {base!r} from {where}: {str(exc).splitlines()[0]}",
                           "Check the id and your network (HF_HUB_OFFLINE=1 forbids downloads), or use --base toy.") from exc
    finally:
        for lib, was_on in bars:
            if was_on:
                lib.enable_progress_bar()
    pipe.set_progress_bar_config(disable=True)
    pipe.to(dev)
    toyish = is_toy_world(pipe)
    sampler = toy_sampler() if toyish else dict(DIFFUSERS_SAMPLER)
    return Base(name=base, source=source, pipe=pipe, toy_world=toyish, sampler=sampler)


def toy_sampler() -> dict:
    """The toy model's default sampler settings, recorded by its build."""
    report = json.loads(toy.BUILD_REPORT.read_text()) if toy.BUILD_REPORT.exists() else {}
    return dict(report.get("sampler", {"guidance_scale": 3.0, "num_inference_steps": 20}))


def is_toy_world(pipe) -> bool:
    """True when the pipeline draws 32x32 images and its tokenizer holds every toy word as one token."""
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    vocab = pipe.tokenizer.get_vocab()
    return size == world.SIZE and all(f"{w}</w>" in vocab for w in world.vocabulary())


def check_prompts(base: Base, prompts: list[str]) -> None:
    """Refuse prompts with words outside the toy vocabulary (a CLIP tokenizer would silently mangle them)."""
    if not base.toy_world:
        return
    known = set(world.vocabulary())
    for prompt in prompts:
        if not prompt.strip():
            continue
        unknown = [w for w in prompt.lower().split() if w not in known]
        if unknown:
            raise UnknownWords(unknown, prompt)


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


def attach_adapters(base: Base, adapters: list[str], weights: list[float] | None = None) -> None:
    """Load LoRA adapter folders/files with diffusers' loader and activate them all (at `weights`, default 1)."""
    from .adapter import read_adapter

    names = []
    for i, path in enumerate(adapters):
        p = Path(path)
        read_adapter(p)          # refuses missing, pickle and corrupt files with a clear message
        name = f"a{i}"
        try:
            with warnings.catch_warnings():   # peft warns on every adapter after the first: stacking is the point
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                base.pipe.load_lora_weights(str(p), adapter_name=name)
        except Exception as exc:  # diffusers raises many kinds for a bad file
            raise DugeError(f"Could not load the adapter {path}: {str(exc).splitlines()[0]}",
                            "Pass a folder or .safetensors file written by `duge-lora train`.") from exc
        names.append(name)
    if names:
        base.pipe.set_adapters(names, adapter_weights=list(weights or [1.0] * len(names)))
