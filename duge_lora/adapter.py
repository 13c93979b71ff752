"""LoRA adapters on the UNet's cross-attention (and, for the robust preset, the feed-forward output of the same
transformer blocks), live in a model: their shape, peft attachment, factors, fingerprint.

Delta_W = (alpha / r) B A (Hu et al. 2022, eq. 3); B starts at zero so a new adapter is exact identity at step 0.
Files are read and written by formats.py; the adapter record and references by records.py.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import torch

from .errors import DugeError, param
from .validate import number

TARGET_CHOICES = ("k", "v", "q", "out", "ff", "ff-low")
# ff: the output projection of the feed-forward layer of each transformer block (the blocks that hold attn2);
# ff-low: the same, only in the blocks below the latent's full resolution (not in the first down block, nor in the
# last up block; docs/benchmarks.md "The feed-forward edit below full resolution, as the preset")
_TARGET_MODULE = {"k": "attn2.to_k", "v": "attn2.to_v", "q": "attn2.to_q", "out": "attn2.to_out.0", "ff": "ff.net.2",
                  "ff-low": "ff.net.2"}
BY_BLOCK = ("ff-low",)           # targets that name modules by block too: peft gets their full module names
TEXT_MAPS = ("k", "v")           # the adapted maps that read the text states (K = W_k e, V = W_v e)


def reads_text(module: str) -> bool:
    """Whether an adapted module (by name) maps the text states: to_k / to_v, not to_q / to_out (image features)."""
    return module.endswith(tuple(_TARGET_MODULE[t] for t in TEXT_MAPS))


@dataclass(frozen=True)
class LoraSpec:
    """Shape of one adapter: rank, alpha (default: the rank, so scaling 1) and which maps of the transformer
    blocks it adapts (the cross-attention projections; ff: the feed-forward output). The one owner of these
    defaults."""
    rank: int = 4
    alpha: float | None = None
    targets: tuple[str, ...] = ("k", "v")

    def __post_init__(self):
        if not isinstance(self.rank, int) or self.rank < 1:
            raise DugeError(f"{param('rank')} must be at least 1, got {self.rank}.", "Use a rank of 4, for example.",
                            option="rank")
        bad = [t for t in self.targets if t not in TARGET_CHOICES]
        if bad or not self.targets:
            raise DugeError(f"Unknown {param('targets')} {','.join(bad) or '(none)'}.",
                            f"Choose from {','.join(TARGET_CHOICES)}, for example k,v.", option="targets")
        if {"ff", "ff-low"} <= set(self.targets):
            raise DugeError(f"{param('targets')} ff already holds every block that ff-low does.",
                            "Give one of ff (every transformer block) and ff-low (the blocks below full resolution).",
                            option="targets")
        object.__setattr__(self, "alpha", float(self.rank if self.alpha is None else self.alpha))
        number("alpha", self.alpha, low=0, low_open=True, example=str(self.rank))

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def target_modules(self) -> list[str]:
        """The module-name suffixes of the targets (ff-low's is ff's: target_names picks its blocks)."""
        return [_TARGET_MODULE[t] for t in self.targets]

    @property
    def by_block(self) -> bool:
        """Whether a target is chosen by block too (ff-low), so that only full module names describe the adapter."""
        return any(t in BY_BLOCK for t in self.targets)

    def lora_config(self, modules=None):
        """peft's LoraConfig: target_modules = the suffixes, or, for a spec by block, the full `modules` names
        (target_names, or an adapter's factor names)."""
        from peft import LoraConfig
        if self.by_block and not modules:
            raise ValueError("A LoRA spec with ff-low needs the module names (target_names) for its LoraConfig.")
        return LoraConfig(r=self.rank, lora_alpha=self.alpha,
                          target_modules=sorted(modules) if self.by_block else self.target_modules(),
                          init_lora_weights=True, lora_dropout=0.0, bias="none")

    def to_dict(self) -> dict:
        """The record's `lora` entry."""
        return asdict(self) | {"targets": list(self.targets), "target_modules": self.target_modules()}


def full_resolution(name: str, up_blocks: int) -> bool:
    """Whether a UNet module sits at the latent's full resolution: in the first down block or the last up block."""
    return name.startswith(("down_blocks.0.", f"up_blocks.{up_blocks - 1}."))


def targets_of(modules) -> tuple[str, ...]:
    """The target letters (k, v, q, out, ff, ff-low) of adapted module names, sorted: the inverse of
    LoraSpec.target_modules. Feed-forward outputs none of which is in the first down block are ff-low (in SD 1.x/2.x
    and the toy UNet, ff in every block includes that one)."""
    found = {next((k for k, v in _TARGET_MODULE.items() if m.endswith(v)), "?") for m in modules}
    if "ff" in found and not any(m.endswith(_TARGET_MODULE["ff"]) and m.startswith("down_blocks.0.") for m in modules):
        found = found - {"ff"} | {"ff-low"}
    return tuple(sorted(found))


def spec_of(factors: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> LoraSpec:
    """The LoraSpec of a set of factors: rank from A's rows, targets from the module names, alpha = rank."""
    rank = next(iter(factors.values()))[0].shape[0]
    return LoraSpec(rank=int(rank), targets=targets_of(factors))


def target_names(unet, spec: LoraSpec) -> list[str]:
    """Module names of the UNet that the spec adapts, sorted (ff-low: not at full resolution)."""
    up = len(getattr(unet, "up_blocks", ()))

    def adapted(n: str) -> bool:
        return any(n.endswith(_TARGET_MODULE[t]) and not (t in BY_BLOCK and full_resolution(n, up)) for t in spec.targets)

    return sorted(n for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear) and adapted(n))


FINGERPRINT_SPEC = LoraSpec(targets=("k", "v", "q", "out"))   # the base's identity: its cross-attention maps


def fingerprint(unet, spec: LoraSpec = FINGERPRINT_SPEC) -> str:
    """sha256 of the base weights adapters touch: every cross-attention projection (q, k, v, out), whatever
    this adapter's targets, so adapters with different targets on one base share a fingerprint.
    Names + fp16 bytes, so fp32 and fp16 loads of the same weights agree."""
    h = hashlib.sha256()
    modules = dict(unet.named_modules())
    for name in target_names(unet, spec):
        w = getattr(modules[name], "base_layer", modules[name]).weight
        h.update(name.encode())
        h.update(w.detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def file_fingerprint(file) -> str:
    """fingerprint() of the UNet stored in a safetensors file, reading only the projections it hashes."""
    from safetensors import safe_open

    suffixes = tuple(FINGERPRINT_SPEC.target_modules())
    h = hashlib.sha256()
    with safe_open(str(file), "pt") as f:
        names = sorted(k[: -len(".weight")] for k in f.keys() if k.endswith(".weight") and k[: -len(".weight")].endswith(suffixes))
        for name in names:
            h.update(name.encode())
            h.update(f.get_tensor(name + ".weight").to(torch.float16).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def attach(unet, spec: LoraSpec, name: str) -> None:
    """Add a fresh, trainable peft LoRA adapter named `name` (B = 0) and make it the active one."""
    unet.add_adapter(spec.lora_config(target_names(unet, spec)), adapter_name=name)


def factors(unet, name: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """module name -> (A (r, in), B (out, r)) of adapter `name`, live tensors (gradients flow)."""
    out = {}
    for mod_name, mod in unet.named_modules():
        if hasattr(mod, "lora_A") and name in mod.lora_A:
            out[mod_name] = (mod.lora_A[name].weight, mod.lora_B[name].weight)
    return out
