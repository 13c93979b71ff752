"""Load a base text-to-image model: the embedded toy model, a local diffusers folder, or a Hub id.

Every base is a real diffusers StableDiffusionPipeline, so every later code path (LoRA on
`attn2.to_k/to_v`, sampling, composing) is the one Stable Diffusion 1.x/2.x uses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from . import toy
from .errors import BaseNotFound, EnvironmentProblem, param
from .worlds import World, world_for

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Base:
    """A loaded base pipeline and what we know about it."""
    name: str                 # as the user gave it: "toy", a path, or a Hub id
    source: str               # the folder or Hub id it was loaded from
    pipe: object              # diffusers.StableDiffusionPipeline
    world: World              # its concepts, prompt sets, vocabulary check and judge (worlds/)
    sampler: dict             # default guidance_scale and num_inference_steps (the world's)
    gen_batch: int | None = None   # images per pipeline call (None: sized to the free memory, memory.generation_batch)

    @property
    def device(self) -> torch.device:
        return self.pipe.unet.device

    @cached_property
    def fingerprint(self) -> str:
        """The base's identity that adapter records carry (adapter.fingerprint), read from the UNet file it was loaded
        from (a local folder or the Hub cache's snapshot), so that loading in bf16, which rounds the weights, does not
        change it; from the loaded UNet where there is no such file. Taken once, before anything is merged into it."""
        from .adapter import file_fingerprint, fingerprint
        from .formats import UNET_WEIGHTS

        loaded_from = getattr(self.pipe.unet.config, "_name_or_path", None)      # set by from_pretrained
        stored = Path(loaded_from) / UNET_WEIGHTS.name if loaded_from else None
        return file_fingerprint(stored) if stored and stored.is_file() else fingerprint(self.pipe.unet)


def pick_device(device: str = "auto") -> torch.device:
    """The torch device for 'auto' (a GPU when there is one), 'cpu', 'cuda[:N]' or 'mps'; a clear error otherwise."""
    from .validate import device as check

    if check(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


PRECISIONS = ("auto", "no", "fp16", "bf16")


def resolve_precision(mixed_precision: str, device: torch.device) -> str:
    """The precision a command runs the base in, the same rule in every command: 'auto' is fp16 on a GPU (as
    diffusers' pipelines are usually run there) and no (float32) elsewhere; fp16 needs a GPU."""
    from .errors import UsageError

    if mixed_precision not in PRECISIONS:
        raise UsageError(f"{param('mixed_precision')} {mixed_precision!r} is not one of {', '.join(PRECISIONS)}.",
                         "Pick one of those.", option="mixed_precision")
    if mixed_precision == "auto":
        return "fp16" if device.type == "cuda" else "no"
    if mixed_precision == "fp16" and device.type != "cuda":
        raise UsageError(f"{param('mixed_precision')} fp16 needs a GPU (it is about 27x slower on a CPU, where some "
                         "half-precision ops are missing).", "Use bf16 or no on a CPU.", option="mixed_precision")
    return mixed_precision


def precision_dtype(mixed_precision: str) -> torch.dtype:
    """The dtype of the frozen base weights for a resolved precision (trained LoRA parameters stay float32)."""
    return {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[mixed_precision]


PICKLES = ("*.bin", "*.ckpt", "*.pt", "*.pth", "*.pkl")


def _refuse_pickles(folder: Path) -> None:
    """A pipeline folder whose weights exist only as pickles is refused before anything is loaded from it."""
    for component in [folder, *(p for p in folder.iterdir() if p.is_dir())]:
        pickles = [f for pattern in PICKLES for f in component.glob(pattern)]
        if pickles and not any(component.glob("*.safetensors")):
            raise BaseNotFound(f"{pickles[0]} is a pickle file, which can run code when loaded, and {component} has no "
                               ".safetensors weights; duge-lora loads safetensors only.",
                               "Convert the pipeline first (load it in diffusers where you trust it, then save_pretrained "
                               "with safe_serialization=True).")


def _check_hub(base: str) -> None:
    """A Hub id offline: fail at once (in one sentence) unless the Hub cache already holds it."""
    from huggingface_hub import constants, snapshot_download

    from .hub import cache_dir, offline

    cache = Path(cache_dir() or constants.HF_HUB_CACHE)
    if cache.exists() and not cache.is_dir():
        raise EnvironmentProblem(f"The Hugging Face cache {cache} is a file, not a folder, so {base!r} cannot be "
                                 "found or downloaded there.", "Point HF_HUB_CACHE (or HF_HOME) at a folder.")
    if offline():
        try:
            snapshot_download(base, local_files_only=True)
        except Exception:  # noqa: BLE001 - any failure here means: not cached
            raise EnvironmentProblem(f"The base {base!r} is a Hub id, but this machine is offline (HF_HUB_OFFLINE=1) "
                                     "and the Hub cache has no copy of it.", f"Go online once to download it, or "
                                     f"pass a local folder or toy as {param('base')}.", option="base") from None


def resolve_base(base: str) -> tuple[str, bool]:
    """Map a base reference to (folder or Hub id, is_hub); raise BaseNotFound for what cannot be a base."""
    if base == "toy":
        if not (toy.PIPELINE_DIR / "model_index.json").exists():
            raise BaseNotFound(f"The embedded toy model is missing from {toy.PIPELINE_DIR}.",
                               "Reinstall duge-lora, or rebuild it with `duge-lora toy build`.")
        return str(toy.PIPELINE_DIR), False
    path = Path(base).expanduser()
    if path.exists():
        if not (path / "model_index.json").exists():
            raise BaseNotFound(f"{base} is not a diffusers pipeline folder (it has no model_index.json).",
                               f"Point {param('base')} at a folder written by save_pretrained, 'toy', or a Hub id.")
        _refuse_pickles(path)
        return str(path), False
    if HUB_ID.match(base):
        _check_hub(base)
        return base, True
    raise BaseNotFound(f"The base {base!r} is neither 'toy', an existing folder, nor a Hub id like 'org/name'.",
                       f"Check the path, or use {param('base')} toy.")


def load_base(base: str = "toy", device: str = "auto", dtype: torch.dtype | None = None, mixed_precision: str = "auto",
              gen_batch: int | None = None) -> Base:
    """Load a StableDiffusionPipeline for a base reference on a device, in the dtype of `mixed_precision`
    (resolve_precision: fp16 on a GPU, fp32 on a CPU by default) unless `dtype` is given."""
    dev = pick_device(device)
    dtype = dtype or precision_dtype(resolve_precision(mixed_precision, dev))
    source, is_hub = resolve_base(base)         # a bad reference fails before diffusers is even imported
    from diffusers import StableDiffusionPipeline

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
                           f"Check the id and your network (HF_HUB_OFFLINE=1 forbids downloads), or use {param('base')} toy.") from exc
    finally:
        for lib, was_on in bars:
            if was_on:
                lib.enable_progress_bar()
    pipe.set_progress_bar_config(disable=True)
    pipe.to(dev)
    world = world_for(pipe)
    return Base(name=base, source=source, pipe=pipe, world=world, sampler=world.sampler(), gen_batch=gen_batch)
