"""Every file duge-lora reads or writes for adapters and models: one key codec, safetensors only, atomic writes.

- an adapter folder (docs/adapter-format.md): pytorch_lora_weights.safetensors in diffusers' LoRA layout
  (`unet.<module>.lora_A/B.weight`) with `lora_adapter_metadata` (the LoraConfig) and our `duge` record in the
  header; duge.json (the same record, readable); README.md (a model card);
- a composed model: a UNet state dict file, a whole diffusers pipeline folder, or one LoRA file, each with a
  `duge_manifest` in the header (and as JSON beside a file, inside a folder).
Later exports (kohya, single-file checkpoints) are one more reader/writer here.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .adapter import LoraSpec, spec_of
from .errors import AdapterError, BadInput, DugeError, param
from .io import atomic_path
from .layout import aligned_metadata

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
RECORD_NAME = "duge.json"
CARD_NAME = "README.md"
MANIFEST_KEY = "duge_manifest"
MANIFEST_FILE = "duge_manifest.json"
UNET_WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"
FORMATS = ("unet", "pipeline", "lora", "kohya", "single-file")
FACTOR_FORMATS = ("lora", "kohya")      # formats that store LoRA factors, not merged weights
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_PARTS = ("A", "B")
Factors = dict[str, tuple[torch.Tensor, torch.Tensor]]


# ----------------------------------------------------------------------------- the key codec (diffusers' LoRA layout)
def lora_key(module: str, part: str) -> str:
    """`unet.{module}.lora_{A|B}.weight`: the one place this layout is spelled out."""
    return f"unet.{module}.lora_{part}.weight"


def parse_lora_key(key: str) -> tuple[str, int] | None:
    """(module, 0 for A / 1 for B) of a UNet LoRA key, or None for any other key."""
    if not key.startswith("unet.") or ".lora_" not in key:
        return None
    module, part = key[len("unet."):].rsplit(".lora_", 1)
    return (module, _PARTS.index(part[0])) if part in ("A.weight", "B.weight") else None


def encode_factors(factors: Factors) -> dict[str, torch.Tensor]:
    """module -> (A, B)  =>  float32 CPU tensors under their diffusers keys, sorted by module."""
    out = {}
    for module, pair in sorted(factors.items()):
        for part, t in zip(_PARTS, pair):
            out[lora_key(module, part)] = t.detach().to("cpu", torch.float32).contiguous()
    return out


def decode_factors(tensors: dict[str, torch.Tensor], where: Path) -> Factors:
    """The inverse of encode_factors; any other key, or a missing half of a pair, is a clear AdapterError."""
    pairs: dict[str, list] = {}
    for key, t in tensors.items():
        parsed = parse_lora_key(key)
        if parsed is None:
            raise AdapterError(f"{where} holds {key!r}, which is not a UNet LoRA weight.",
                               "Pass an adapter written by `duge-lora train`.")
        pairs.setdefault(parsed[0], [None, None])[parsed[1]] = t
    if not pairs or any(a is None or b is None for a, b in pairs.values()):
        raise AdapterError(f"{where} has no complete LoRA factor pairs.", "It may be corrupt; train it again.")
    return {k: (v[0], v[1]) for k, v in pairs.items()}


def kohya_key(module: str) -> str:
    """kohya sd-scripts' name of a UNet module (diffusers naming, dots as underscores), as A1111, ComfyUI and
    diffusers' own kohya conversion read it: down_blocks.0...attn2.to_k -> lora_unet_down_blocks_0_..._attn2_to_k."""
    return "lora_unet_" + module.replace(".", "_")


def encode_kohya(factors: Factors) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """module -> (A, B)  =>  the kohya LoRA layout: `lora_down.weight` = A, `lora_up.weight` = B, `alpha` = rank
    (kohya applies alpha / rank, so 1: the scaling is already in B), plus the `ss_*` header its readers show."""
    out = {}
    for module, (a, b) in sorted(factors.items()):
        key = kohya_key(module)
        out[f"{key}.lora_down.weight"] = a.detach().to("cpu", torch.float32).contiguous()
        out[f"{key}.lora_up.weight"] = b.detach().to("cpu", torch.float32).contiguous()
        out[f"{key}.alpha"] = torch.tensor(float(a.shape[0]))
    rank = max(a.shape[0] for a, _ in factors.values())
    return out, {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(rank)}


def lora_metadata(spec: LoraSpec, modules) -> str:
    """diffusers' `lora_adapter_metadata` header: the LoraConfig, keys prefixed with 'unet.' (a spec by block names
    the adapted `modules` in full, so that diffusers adds LoRA layers to those alone)."""
    cfg = spec.lora_config(modules).to_dict()
    return json.dumps({f"unet.{k}": (sorted(v) if isinstance(v, set) else v) for k, v in cfg.items()},
                      indent=2, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- reading
def read_safetensors(file: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header metadata) of a safetensors file; a pickle or an unreadable file is a clear DugeError."""
    from safetensors import safe_open

    if file.suffix in PICKLE_SUFFIXES:
        raise AdapterError(f"{file} is a pickle file, which can run code when loaded; duge-lora loads safetensors only.",
                           "Convert it to .safetensors first.")
    try:
        with safe_open(str(file), "pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except Exception as exc:
        raise AdapterError(f"{file} is not a readable safetensors file ({str(exc).splitlines()[0]}).",
                           "It may be truncated or corrupt; train or download it again.") from exc


def _own_places(folder: Path) -> tuple[Path, ...]:
    """Where an adapter folder's files may really live: in the folder, or, inside a snapshot in the Hugging Face cache
    (models--u--n/snapshots/<sha>/[member/]), in that repo's blobs/ folder, as the cache stores them."""
    folder = folder.resolve()
    snapshots = next((p for p in folder.parents if p.name == "snapshots"), None)
    return (folder, snapshots.parent / "blobs") if snapshots is not None else (folder,)


def adapter_weights_file(path: Path) -> Path:
    """The weights file of an adapter folder (or the file itself); missing is a clear AdapterError."""
    file = path / WEIGHTS_NAME if path.is_dir() else path
    if not file.exists():
        raise AdapterError(f"No adapter at {file}.",
                           "Pass a folder written by `duge-lora train` (it holds pytorch_lora_weights.safetensors).")
    if path.is_dir() and file.is_symlink() and file.resolve().parent not in _own_places(path):
        raise AdapterError(f"{file} is a symlink out of its adapter folder (to {file.resolve()}); duge-lora does not "
                           "follow it.", "Copy the real file into the folder.")
    if not file.is_file():
        raise AdapterError(f"{file} is not a file.", "Pass an adapter folder or its .safetensors file.")
    return file


def read_lora_file(file: Path) -> tuple[Factors, LoraSpec, dict]:
    """An adapter's weights file -> (factors, spec, the `duge` record in its header as a dict)."""
    tensors, meta = read_safetensors(file)
    try:
        lora_meta = json.loads(meta.get("lora_adapter_metadata", "{}"))
        record = json.loads(meta.get("duge", "{}"))
    except ValueError as exc:
        raise AdapterError(f"{file} has a header that is not valid JSON ({exc}).", "It may be corrupt; train it again.") from exc
    weights = decode_factors(tensors, file)
    rank = next(iter(weights.values()))[0].shape[0]
    lora = record.get("lora") if isinstance(record, dict) and isinstance(record.get("lora"), dict) else {}
    try:
        targets = lora.get("targets") or spec_of(weights).targets
        spec = LoraSpec(rank=int(lora_meta.get("unet.r", rank)), alpha=float(lora_meta.get("unet.lora_alpha", rank)),
                        targets=tuple(targets))
    except (DugeError, TypeError, ValueError) as exc:
        raise AdapterError(f"{file} describes an impossible LoRA shape ({exc}).", "It may be corrupt; train it again.") from None
    return weights, spec, record


def unet_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """module -> weight shape of a pipeline folder's UNet, read from the safetensors header (no tensor is loaded)."""
    from safetensors import safe_open

    with safe_open(str(folder / UNET_WEIGHTS), "pt") as f:
        return {k[: -len(".weight")]: tuple(f.get_slice(k).get_shape()) for k in f.keys() if k.endswith(".weight")}


def read_model(path: Path) -> tuple[dict[str, torch.Tensor], dict, str]:
    """A composed UNet file or pipeline folder -> (UNet state dict, manifest, format)."""
    fmt, file = ("pipeline", path / UNET_WEIGHTS) if path.is_dir() else ("unet", path)
    if not file.exists():
        raise BadInput(f"{path} is neither a composed UNet file nor a pipeline folder.", "Pass the output of `duge-lora compose`.")
    if file.suffix != ".safetensors":
        raise BadInput(f"{file} is not a safetensors file; duge-lora loads safetensors only.", "Pass a .safetensors file.")
    state, meta = read_safetensors(file)
    bad = next((k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:
        raise BadInput(f"{file} holds NaN or infinite values (in {bad}).", "Compose it again from its adapters.")
    if MANIFEST_KEY not in meta:
        raise BadInput(f"{path} has no duge-lora manifest, so it is not known which adapters it contains.",
                        "Remove adapters only from models written by `duge-lora compose`.")
    return state, json.loads(meta[MANIFEST_KEY]), fmt


# ----------------------------------------------------------------------------- writing
def write_adapter_folder(folder: Path, factors: Factors, spec: LoraSpec, record: dict, card: str) -> None:
    """Write the three files of an adapter folder into `folder` (the caller makes it atomic)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    header = {"format": "pt", "lora_adapter_metadata": lora_metadata(spec, factors), "duge": json.dumps(record, sort_keys=True)}
    save_file(encode_factors(factors), str(folder / WEIGHTS_NAME), metadata=header)
    (folder / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    (folder / CARD_NAME).write_text(card)


def output_format(output: Path, fmt: str | None) -> str:
    """The format of a composed output: as asked, or unet for *.safetensors, else a pipeline folder."""
    if fmt:
        if fmt not in FORMATS:
            raise DugeError(f"Unknown {param('format')} {fmt!r}.", f"Choose one of {', '.join(FORMATS)}.", option="format")
        return fmt
    return "unet" if output.suffix == ".safetensors" else "pipeline"


def base_folder(source: str) -> Path:
    """A local folder holding the base pipeline (a Hub id resolves to its cached snapshot)."""
    path = Path(source)
    if path.exists():
        return path
    from huggingface_hub import snapshot_download
    return Path(snapshot_download(source, allow_patterns=["*.json", "*.txt", "*.safetensors"]))


def load_text_encoder_in_fp32(folder: Path) -> None:
    """Make a bare `StableDiffusionPipeline.from_pretrained(folder)` work: diffusers loads the UNet in float32, while
    transformers 5 keeps a text encoder's stored dtype, so an fp16 text encoder fails at the first generation.
    Its config's dtype is set to float32 (the weights stay as they are; transformers casts them on load)."""
    config = folder / "text_encoder" / "config.json"
    if not config.exists():
        return
    data = json.loads(config.read_text())
    for key in ("dtype", "torch_dtype"):
        if data.get(key) in ("float16", "bfloat16"):
            data[key] = "float32"
    config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def manifest_path(output: Path) -> Path:
    """Where the JSON copy of a manifest goes: inside a folder, or beside a file (model.manifest.json)."""
    return output / MANIFEST_FILE if output.is_dir() or not output.suffix else output.with_suffix(".manifest.json")


def write_composed(output: Path, manifest: dict, *, factors: Factors | None = None, unet: dict | None = None,
                   base: Path | None = None, like: Path | None = None) -> None:
    """Write a composed model atomically: one LoRA file (`factors`), or merged UNet weights (`unet`) as a file or
    as a copy of the pipeline folder `base`. The manifest in the header is padded so the tensor data keeps the page
    alignment of `like` (layout.py: it makes writing an SD-sized UNet as fast as copying the base)."""
    from safetensors.torch import save_file

    fmt = manifest["output_format"]
    header = {"format": "pt", MANIFEST_KEY: json.dumps(manifest, sort_keys=True)}
    text = json.dumps(manifest, indent=2) + "\n"
    with atomic_path(output) as tmp:
        if fmt == "lora":
            header["lora_adapter_metadata"] = lora_metadata(spec_of(factors), factors)
            save_file(encode_factors(factors), str(tmp), metadata=header)
        elif fmt == "kohya":
            tensors, meta = encode_kohya(factors)
            save_file(tensors, str(tmp), metadata=header | meta)
        else:
            unet = {k: v.to("cpu").contiguous() for k, v in unet.items()}
            header = aligned_metadata(unet, header, MANIFEST_KEY, like or base / UNET_WEIGHTS)
            if fmt == "unet":
                save_file(unet, str(tmp), metadata=header)
            elif fmt == "single-file":
                from .single_file import from_folder
                save_file(from_folder(base, unet), str(tmp), metadata={k: v.rstrip() for k, v in header.items()})
            else:
                shutil.copytree(base, tmp, ignore=shutil.ignore_patterns("*.bin", "*.ckpt", ".cache"))
                save_file(unet, str(tmp / UNET_WEIGHTS), metadata=header)
                load_text_encoder_in_fp32(tmp)
                (tmp / MANIFEST_FILE).write_text(text)
    if fmt != "pipeline":
        with atomic_path(manifest_path(output)) as tmp:
            tmp.write_text(text)
