"""Training data made by the frozen previous model theta_{k-1}, cached on disk keyed by what produced it.

method.md, "Data": anchor, preserve and replay latents are sampled from theta_{k-1}; the cache key is the
base fingerprint + the earlier adapters' sha256 + the prompts + the seed + the sampler (and the UNet's dtype where
it is not float32), so a second run (or another request with the same parents) reuses them.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .generate import Progress, generate
from .errors import EnvironmentProblem
from .io import atomic_path
from .models import Base


def cache_root() -> Path:
    return Path(os.environ.get("DUGE_LORA_CACHE", Path.home() / ".cache" / "duge-lora"))


def check_cache(cache: Path | None = None) -> Path:
    """The data cache's folder, made if new; a cache that cannot be written (a file, read-only, full) is one clear
    error before any data is generated, not after minutes of it."""
    import tempfile

    root = (cache or cache_root()) / "data"
    try:
        root.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=root).close()
    except OSError as exc:
        raise EnvironmentProblem(f"The data cache {root} cannot be written ({exc.strerror or exc}).",
                                 "Point DUGE_LORA_CACHE at a folder you can write to.") from None
    return root


def data_key(fingerprint: str, parents: list[str], prompts: list[str], seed: int, sampler: dict) -> str:
    blob = json.dumps({"base": fingerprint, "parents": parents, "prompts": prompts, "seed": seed,
                       "sampler": sampler}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cached_latents(base: Base, prompts: list[str], seed: int, fingerprint: str, parents: list[str],
                   cache: Path | None = None, progress: Progress | None = None) -> tuple[torch.Tensor, bool]:
    """One latent x_0 per prompt, (N, C, h, w), from the cache or generated now; returns (latents, was_cached)."""
    from safetensors.torch import load_file, save_file

    dtype = base.pipe.unet.dtype                 # an fp16 or bf16 load draws other images than fp32: its own entries
    sampler = base.sampler if dtype == torch.float32 else {**base.sampler, "dtype": str(dtype)}
    key = data_key(fingerprint, parents, prompts, seed, sampler)
    path = (cache or cache_root()) / "data" / f"{key}.safetensors"
    if path.exists():
        try:
            return load_file(str(path))["latents"], True
        except Exception:
            path.unlink(missing_ok=True)     # a damaged entry is regenerated, never trusted (another process may be first)
    latents = generate(base, prompts, 1, seed, progress=progress, output_type="latent")[:, 0]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"latents": latents.contiguous()}, str(tmp), metadata={"prompts": json.dumps(prompts)})
    return latents, False
