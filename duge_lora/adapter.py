"""LoRA adapters on the UNet's cross-attention: attach with peft, read factors, save and load files.

An adapter folder holds (docs/adapter-format.md):
  pytorch_lora_weights.safetensors  diffusers' LoRA layout (`unet.<module>.lora_A/B.weight`) with
                                    `lora_adapter_metadata` and our `duge` record in the header;
  duge.json                         the same record, human-readable;
  README.md                         a model card.
Delta_W = (alpha / r) B A (Hu et al. 2022, eq. 3); B starts at zero so a new adapter is exact
identity at step 0.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .errors import DugeError

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
RECORD_NAME = "duge.json"
CARD_NAME = "README.md"
TARGET_CHOICES = ("k", "v", "q", "out")
_TARGET_MODULE = {"k": "attn2.to_k", "v": "attn2.to_v", "q": "attn2.to_q", "out": "attn2.to_out.0"}


@dataclass(frozen=True)
class LoraSpec:
    """Shape of one adapter: rank, alpha and which cross-attention projections it adapts."""
    rank: int = 4
    alpha: float = 4.0
    targets: tuple[str, ...] = ("k", "v")

    def __post_init__(self):
        if self.rank < 1:
            raise DugeError(f"--rank must be at least 1, got {self.rank}.", "Use e.g. --rank 4.")
        bad = [t for t in self.targets if t not in TARGET_CHOICES]
        if bad or not self.targets:
            raise DugeError(f"Unknown --targets {','.join(bad) or '(none)'}.", f"Choose from {','.join(TARGET_CHOICES)}, e.g. --targets k,v.")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def target_modules(self) -> list[str]:
        return [_TARGET_MODULE[t] for t in self.targets]

    def lora_config(self):
        from peft import LoraConfig
        return LoraConfig(r=self.rank, lora_alpha=self.alpha, target_modules=self.target_modules(),
                          init_lora_weights=True, lora_dropout=0.0, bias="none")


def target_names(unet, spec: LoraSpec) -> list[str]:
    """Module names of the UNet that the spec adapts, sorted."""
    suffixes = tuple(spec.target_modules())
    return sorted(n for n, m in unet.named_modules() if n.endswith(suffixes) and isinstance(m, torch.nn.Linear))


FINGERPRINT_SPEC = LoraSpec(targets=TARGET_CHOICES)


def fingerprint(unet, spec: LoraSpec = FINGERPRINT_SPEC) -> str:
    """sha256 of the base weights adapters touch: every cross-attention projection (q, k, v, out), whatever
    this adapter's targets, so adapters with different --targets on one base share a fingerprint.
    Names + fp16 bytes, so fp32 and fp16 loads of the same weights agree."""
    h = hashlib.sha256()
    modules = dict(unet.named_modules())
    for name in target_names(unet, spec):
        w = getattr(modules[name], "base_layer", modules[name]).weight
        h.update(name.encode())
        h.update(w.detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def attach(unet, spec: LoraSpec, name: str) -> None:
    """Add a fresh, trainable peft LoRA adapter named `name` (B = 0) and make it the active one."""
    unet.add_adapter(spec.lora_config(), adapter_name=name)


def factors(unet, name: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """module name -> (A (r, in), B (out, r)) of adapter `name`, live tensors (gradients flow)."""
    out = {}
    for mod_name, mod in unet.named_modules():
        if hasattr(mod, "lora_A") and name in mod.lora_A:
            out[mod_name] = (mod.lora_A[name].weight, mod.lora_B[name].weight)
    return out


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- on disk
@dataclass
class Adapter:
    """An adapter read from disk: its factors, shape and record."""
    path: Path                                         # the folder (or file) given
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]]   # module -> (A, B)
    spec: LoraSpec
    record: dict
    sha256: str

    @property
    def concept(self) -> str:
        return self.record.get("request", {}).get("concept", "?")


def _weights_file(path: Path) -> Path:
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.exists():
        raise DugeError(f"No adapter at {path}.", "Pass a folder written by `duge-lora train` (it holds pytorch_lora_weights.safetensors).")
    if path.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"):
        raise DugeError(f"{path} is a pickle file, which can run code when loaded; duge-lora loads safetensors only.",
                        "Convert it to .safetensors first.")
    return path


def read_adapter(path: str | Path) -> Adapter:
    """Read an adapter folder or its .safetensors file; a corrupt or foreign file is a clear DugeError."""
    from safetensors import safe_open

    given = Path(path)
    wfile = _weights_file(given)
    try:
        with safe_open(str(wfile), "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        lora_meta = json.loads(meta.get("lora_adapter_metadata", "{}"))
        record = json.loads(meta.get("duge", "{}"))
    except Exception as exc:
        raise DugeError(f"{wfile} is not a readable safetensors adapter ({str(exc).splitlines()[0]}).",
                        "It may be truncated or corrupt; train or download it again.") from exc
    weights: dict[str, list] = {}
    for key, t in tensors.items():
        if not key.startswith("unet.") or ".lora_" not in key:
            raise DugeError(f"{wfile} holds {key!r}, which is not a UNet LoRA weight.", "Pass an adapter written by `duge-lora train`.")
        module, part = key[len("unet."):].rsplit(".lora_", 1)
        weights.setdefault(module, [None, None])["A.weight B.weight".split().index(part)] = t
    if not weights or any(a is None or b is None for a, b in weights.values()):
        raise DugeError(f"{wfile} has no complete LoRA factor pairs.", "It may be corrupt; train it again.")
    rank = next(iter(weights.values()))[0].shape[0]
    spec = LoraSpec(rank=int(lora_meta.get("unet.r", rank)), alpha=float(lora_meta.get("unet.lora_alpha", rank)),
                    targets=tuple(record.get("lora", {}).get("targets") or _targets_of(weights)))
    return Adapter(given, {k: (v[0], v[1]) for k, v in weights.items()}, spec, record, file_sha256(wfile))


def _targets_of(weights: dict) -> list[str]:
    inverse = {v: k for k, v in _TARGET_MODULE.items()}
    return sorted({inverse.get(m.split("transformer_blocks.")[-1].split(".", 1)[-1], "?") for m in weights})


def lora_metadata(spec: LoraSpec) -> str:
    """diffusers' `lora_adapter_metadata` header: the LoraConfig, keys prefixed with 'unet.'."""
    cfg = spec.lora_config().to_dict()
    return json.dumps({f"unet.{k}": (sorted(v) if isinstance(v, set) else v) for k, v in cfg.items()},
                      indent=2, sort_keys=True, default=str)


def save_adapter(folder: Path, weights: dict[str, tuple[torch.Tensor, torch.Tensor]], spec: LoraSpec,
                 record: dict, card: str) -> None:
    """Write the three files of an adapter folder into `folder` (the caller makes it atomic)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for module, (a, b) in sorted(weights.items()):
        tensors[f"unet.{module}.lora_A.weight"] = a.detach().to("cpu", torch.float32).contiguous()
        tensors[f"unet.{module}.lora_B.weight"] = b.detach().to("cpu", torch.float32).contiguous()
    header = {"format": "pt", "lora_adapter_metadata": lora_metadata(spec), "duge": json.dumps(record, sort_keys=True)}
    save_file(tensors, str(folder / WEIGHTS_NAME), metadata=header)
    (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    (folder / CARD_NAME).write_text(card)


def spec_dict(spec: LoraSpec) -> dict:
    return asdict(spec) | {"targets": list(spec.targets), "target_modules": spec.target_modules()}
