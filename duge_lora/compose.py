"""Compose adapters into the cumulatively unlearned model: merge (sum), cat, svd, remove; with manifests.

method.md, "Composition": theta = theta_0 + sum_i w_i Delta_W_i, Delta_W_i = (alpha_i/r_i) B_i A_i.
- sum: fuse the sum into the base weights (exact to float rounding);
- cat: one LoRA of rank sum r_i, A = [A_1; ...; A_n], B = [w_1 s_1 B_1, ..., w_n s_n B_n], scaling 1: exactly
  the stack (peft's `cat` combination, done by hand because diffusers' UNet does not expose it);
- svd: the per-module sum truncated to rank R by SVD (Eckart-Young), with its relative Frobenius error;
- remove: subtract w_j Delta_W_j from a merged model whose manifest lists adapter j.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import __version__
from .adapter import Adapter, LoraSpec, read_adapter
from .errors import DugeError
from .merge import delta_w

METHODS = ("sum", "cat", "svd")
FORMATS = ("unet", "pipeline", "lora")


@dataclass
class Item:
    adapter: Adapter
    weight: float = 1.0


def parse_item(arg: str) -> tuple[str, float]:
    """'path[:weight]' -> (path, weight); a weight that is not a number is a clear error."""
    if ":" in arg:
        path, _, w = arg.rpartition(":")
        try:
            weight = float(w)
        except ValueError:
            raise DugeError(f"The weight in {arg!r} is not a number.", "Write ADAPTER:WEIGHT, e.g. erase-circle:0.5.") from None
        if not math.isfinite(weight):
            raise DugeError(f"The weight in {arg!r} is not finite.", "Use a finite number, e.g. 1.0.")
        return path, weight
    return arg, 1.0


def load_items(args: list[str]) -> list[Item]:
    items = []
    for arg in args:
        path, w = parse_item(arg)
        items.append(Item(read_adapter(path), w))
    return items


def check_items(items: list[Item]) -> list[str]:
    """Refuse what cannot be composed; return warnings about lineage (parents missing or out of order)."""
    if not items:
        raise DugeError("No adapters to compose.", "Name at least one adapter folder.")
    shas = [i.adapter.sha256 for i in items]
    for k, sha in enumerate(shas):
        if sha in shas[:k]:
            raise DugeError(f"{items[k].adapter.path} is listed twice (same weights as {items[shas.index(sha)].adapter.path}).",
                            "List each adapter once; use ADAPTER:WEIGHT to scale one.")
    fps = {i.adapter.record.get("base", {}).get("fingerprint") for i in items} - {None}
    if len(fps) > 1:
        raise DugeError(f"These adapters were made for different bases (fingerprints {', '.join(sorted(fps))}).",
                        "Compose only adapters trained on the same --base.")
    modules = {frozenset(i.adapter.weights) for i in items}
    if len(modules) > 1:
        raise DugeError("These adapters adapt different modules (their --targets differ).",
                        "Compose adapters trained with the same --targets.")
    warnings, position = [], {sha: k for k, sha in enumerate(shas)}
    for k, item in enumerate(items):
        for parent in item.adapter.record.get("parents", []):
            where = position.get(parent["sha256"])
            if where is None:
                warnings.append(f"{item.adapter.path} was trained after {parent['concept']!r}, which is not in this composition.")
            elif where > k:
                warnings.append(f"{item.adapter.path} was trained after {parent['concept']!r}, which comes later here.")
    return warnings


def manifest(items: list[Item], method: str, fmt: str, extra: dict | None = None) -> dict:
    """What a composed output is made of (written in its header and as JSON beside it)."""
    fp = next((i.adapter.record.get("base", {}).get("fingerprint") for i in items), None)
    return {
        "format": "duge-lora-composition/1",
        "duge_lora_version": __version__,
        "method": method,
        "output_format": fmt,
        "base": {"fingerprint": fp, **{k: v for k, v in items[0].adapter.record.get("base", {}).items() if k != "fingerprint"}},
        "adapters": [{"order": k + 1, "concept": i.adapter.concept, "sha256": i.adapter.sha256, "weight": i.weight,
                      "path": str(i.adapter.path), "rank": i.adapter.spec.rank} for k, i in enumerate(items)],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    } | (extra or {})


# ----------------------------------------------------------------------------- the maths
def cat_module(items: list[Item], module: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One module of the weighted stack as one LoRA of scaling 1: A = [A_1; ...; A_n], B = [w_1 s_1 B_1 | ... ]."""
    a = torch.cat([it.adapter.weights[module][0].float() for it in items], 0)
    b = torch.cat([it.weight * it.adapter.spec.scaling * it.adapter.weights[module][1].float() for it in items], 1)
    return a, b


def summed_delta(items: list[Item], module: str, device: torch.device) -> torch.Tensor:
    """sum_i w_i Delta_W_i for one module, float32 on `device`, as the single product B_cat @ A_cat."""
    a, b = cat_module(items, module)
    return b.to(device) @ a.to(device)


def cat_factors(items: list[Item]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """One LoRA equal to the weighted stack, every module (scaling 1)."""
    return {module: cat_module(items, module) for module in items[0].adapter.weights}


def svd_factors(items: list[Item], rank: int, device: torch.device) -> tuple[dict, float]:
    """Rank-R factors of each module's summed Delta_W (best in Frobenius norm) and the relative error overall."""
    out, err2, norm2 = {}, 0.0, 0.0
    for module in items[0].adapter.weights:
        d = summed_delta(items, module, device)
        u, s, vh = torch.linalg.svd(d, full_matrices=False)
        r = min(rank, len(s))
        root = s[:r].sqrt()
        out[module] = ((root[:, None] * vh[:r]).cpu(), (u[:, :r] * root[None]).cpu())    # A (r, in), B (out, r)
        err2 += float(s[r:].pow(2).sum())
        norm2 += float(s.pow(2).sum())
    return out, math.sqrt(err2 / norm2) if norm2 > 0 else 0.0


@torch.no_grad()
def add_deltas(state: dict[str, torch.Tensor], deltas: dict[str, torch.Tensor], sign: float = 1.0) -> None:
    """Add sign * Delta_W[module] to state[module + '.weight'] in place.

    The adapted weights are kept in float32 (a base stored in fp16 would otherwise round the sum to ~1e-3);
    every other tensor keeps its stored dtype, so the output is about the size of the base.
    """
    for module, d in deltas.items():
        key = f"{module}.weight"
        if key not in state:
            raise DugeError(f"The base has no weight {key} that the adapter adapts.", "Compose onto the base the adapters were trained for.")
        w = state[key]
        state[key] = (w.to(d.device, torch.float32) + sign * d).to(w.device)


def lora_spec_of(factors: dict) -> LoraSpec:
    """A scaling-1 LoraSpec for composed factors (alpha = rank)."""
    r = next(iter(factors.values()))[0].shape[0]
    names = {m.split("attn2.")[-1] for m in factors}
    inverse = {"to_k": "k", "to_v": "v", "to_q": "q", "to_out.0": "out"}
    return LoraSpec(rank=r, alpha=float(r), targets=tuple(sorted(inverse[n] for n in names)))


@dataclass
class Composition:
    """What compose produced, in memory: merged weights or LoRA factors, and the manifest."""
    manifest: dict
    deltas: dict[str, torch.Tensor] = field(default_factory=dict)       # for unet / pipeline formats
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # for lora format
    relative_error: float | None = None
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- building and writing
def compose(items: list[Item], method: str = "sum", fmt: str = "unet", rank: int | None = None,
            device: torch.device | None = None) -> Composition:
    """The composed update in memory: per-module Delta_W (unet/pipeline formats) or LoRA factors (lora format)."""
    if method not in METHODS:
        raise DugeError(f"Unknown --method {method!r}.", f"Choose one of {', '.join(METHODS)}.")
    if fmt not in FORMATS:
        raise DugeError(f"Unknown --format {fmt!r}.", f"Choose one of {', '.join(FORMATS)}.")
    if method == "svd" and not rank:
        raise DugeError("--method svd needs a rank budget.", "Pass --rank R, e.g. --rank 8.")
    warnings = check_items(items)
    device = device or torch.device("cpu")
    rel = None
    if method == "svd":
        factors, rel = svd_factors(items, rank, device)
    elif method == "cat" or fmt == "lora":          # a sum written as one LoRA is exactly the cat
        factors = cat_factors(items)
    else:
        factors = {}
    comp = Composition(manifest(items, method, fmt, {"relative_error": rel} if rel is not None else None),
                       relative_error=rel, warnings=warnings)
    if fmt == "lora":
        comp.factors = factors
    elif factors:
        comp.deltas = {m: delta_w(a.to(device), b.to(device), 1.0) for m, (a, b) in factors.items()}
    else:
        comp.deltas = {m: summed_delta(items, m, device) for m in items[0].adapter.weights}
    return comp


MANIFEST_KEY = "duge_manifest"
MANIFEST_FILE = "duge_manifest.json"
UNET_WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"


def base_folder(source: str) -> Path:
    """A local folder holding the base pipeline (a Hub id resolves to its cached snapshot)."""
    path = Path(source)
    if path.exists():
        return path
    from huggingface_hub import snapshot_download
    return Path(snapshot_download(source, allow_patterns=["*.json", "*.txt", "*.safetensors"]))


def manifest_path(output: Path) -> Path:
    """Where the JSON copy of a manifest goes: inside a folder, or beside a file (model.manifest.json)."""
    return output / MANIFEST_FILE if output.is_dir() or not output.suffix else output.with_suffix(".manifest.json")


def read_model(path: Path) -> tuple[dict[str, torch.Tensor], dict, str]:
    """A composed UNet file or pipeline folder -> (UNet state dict, manifest, format)."""
    import json

    from safetensors import safe_open

    fmt, file = ("pipeline", path / UNET_WEIGHTS) if path.is_dir() else ("unet", path)
    if not file.exists():
        raise DugeError(f"{path} is neither a composed UNet file nor a pipeline folder.", "Pass the output of `duge-lora compose`.")
    if file.suffix != ".safetensors":
        raise DugeError(f"{file} is not a safetensors file; duge-lora loads safetensors only.", "Pass a .safetensors file.")
    try:
        with safe_open(str(file), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise DugeError(f"{file} is not a readable safetensors file ({str(exc).splitlines()[0]}).", "It may be corrupt.") from exc
    if MANIFEST_KEY not in meta:
        raise DugeError(f"{path} has no duge-lora manifest, so it is not known which adapters it contains.",
                        "Remove adapters only from models written by `duge-lora compose`.")
    return state, json.loads(meta[MANIFEST_KEY]), fmt


def write_output(comp: Composition, source: str, output: Path, dtype: torch.dtype | None = None,
                 state: dict | None = None, like: Path | None = None) -> None:
    """Write a composition (atomically) in its format; `state` overrides the base UNet weights (for remove), read
    from the file `like`. The manifest in the header is padded so the tensor data keeps that file's page alignment
    (layout.py: it makes writing an SD-sized UNet as fast as copying the base)."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    from .adapter import lora_metadata
    from .io import atomic_path
    from .layout import aligned_metadata

    fmt = comp.manifest["output_format"]
    header = {"format": "pt", MANIFEST_KEY: json.dumps(comp.manifest, sort_keys=True)}
    text = json.dumps(comp.manifest, indent=2) + "\n"
    with atomic_path(output) as tmp:
        if fmt == "lora":
            tensors = {}
            for module, (a, b) in sorted(comp.factors.items()):
                tensors[f"unet.{module}.lora_A.weight"] = a.float().contiguous()
                tensors[f"unet.{module}.lora_B.weight"] = b.float().contiguous()
            header["lora_adapter_metadata"] = lora_metadata(lora_spec_of(comp.factors))
            save_file(tensors, str(tmp), metadata=header)
        else:
            folder = base_folder(source)
            unet = state if state is not None else load_file(str(folder / UNET_WEIGHTS))
            if dtype is not None:
                unet = {k: v.to(dtype) if v.is_floating_point() else v for k, v in unet.items()}
            add_deltas(unet, comp.deltas)
            unet = {k: v.to("cpu").contiguous() for k, v in unet.items()}
            header = aligned_metadata(unet, header, MANIFEST_KEY, like or folder / UNET_WEIGHTS)
            if fmt == "unet":
                save_file(unet, str(tmp), metadata=header)
            else:
                shutil.copytree(folder, tmp, ignore=shutil.ignore_patterns("*.bin", "*.ckpt", ".cache"))
                save_file(unet, str(tmp / UNET_WEIGHTS), metadata=header)
                (tmp / MANIFEST_FILE).write_text(text)
    if fmt != "pipeline":
        with atomic_path(manifest_path(output)) as tmp:
            tmp.write_text(text)


def removal(model: Path, adapter: Adapter, device: torch.device | None = None) -> tuple[Composition, dict]:
    """The composition that subtracts `adapter` from a merged model whose manifest lists it, and the model's weights."""
    state, man, fmt = read_model(model)
    entry = next((a for a in man["adapters"] if a["sha256"] == adapter.sha256), None)
    if entry is None:
        listed = ", ".join(a["concept"] for a in man["adapters"]) or "none"
        raise DugeError(f"{model} does not contain {adapter.path} (its manifest lists: {listed}).",
                        "Remove only an adapter that was composed into this model.")
    if man.get("method") == "svd":
        raise DugeError(f"{model} was composed with --method svd, so {adapter.concept!r} cannot be subtracted exactly.",
                        "Compose again without it instead.")
    device = device or torch.device("cpu")
    deltas = {m: -entry["weight"] * delta_w(a.to(device), b.to(device), adapter.spec.scaling)
              for m, (a, b) in adapter.weights.items()}
    new = dict(man) | {"adapters": [a for a in man["adapters"] if a["sha256"] != adapter.sha256],
                       "removed": man.get("removed", []) + [entry], "output_format": fmt}
    return Composition(manifest=new, deltas=deltas), state


def composed_unet(output: Path, fmt: str, base_source: str, device: torch.device):
    """Load what compose wrote as a UNet (for verification), with plain diffusers loaders."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    if fmt == "pipeline":
        return UNet2DConditionModel.from_pretrained(str(output / "unet"), dtype=torch.float32).to(device)
    unet = UNet2DConditionModel.from_pretrained(str(base_folder(base_source) / "unet"), dtype=torch.float32)
    if fmt == "unet":
        unet.load_state_dict({k: v.float() for k, v in load_file(str(output)).items()})
    else:                                   # a LoRA file: diffusers' own loader, as a user would
        from diffusers import StableDiffusionPipeline
        pipe = StableDiffusionPipeline.from_pretrained(str(base_folder(base_source)), dtype=torch.float32,
                                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.load_lora_weights(str(output.parent), weight_name=output.name, adapter_name="composed")
        unet = pipe.unet
    return unet.to(device)


# ----------------------------------------------------------------------------- the API the command mirrors
def verify_output(base: str, items: list[Item], output: Path, fmt: str, device: torch.device,
                  judge: bool = True, progress=None) -> dict:
    """Compare the composed output with base + the live peft stack on probe inputs (max abs difference of the
    UNet's prediction); on a toy-world base also judge each composed concept's UA and the retain accuracies."""
    from .concepts import Request
    from .evaluate import evaluate
    from .models import attach_adapters, load_base, probe

    live = load_base(base, str(device))
    attach_adapters(live, [str(i.adapter.path) for i in items], [i.weight for i in items])
    composed = composed_unet(output, fmt, live.source, device)
    result: dict = {"max_abs_diff": float((probe(composed) - probe(live.pipe.unet)).abs().max())}
    targets = [Request.from_dict(i.adapter.record["request"]) for i in items if i.adapter.record.get("request", {}).get("axis")]
    if judge and live.toy_world and targets:
        live.pipe.unet = composed                      # the composed model, judged like any other
        r = evaluate(live, n=1, targets=targets, progress=progress)
        result["judge"] = {"targets": r.targets, "ua_prev": r.ua_prev, "ira": r.ira, "cra": r.cra, "accuracy": r.accuracy}
    return result


def compose_adapters(adapters: list[str], output: str | Path, base: str = "toy", method: str = "sum",
                     fmt: str = "unet", rank: int | None = None, device: torch.device | None = None,
                     verify: bool = True, judge: bool = True, progress=None) -> dict:
    """`duge-lora compose` as a function: write the composition of adapters ('path[:weight]') and return the result.

    The result holds output, method, format, adapters, the manifest, warnings, seconds, and when verified
    max_abs_diff (and on the toy base the judge's figures under "judge").
    """
    import time

    from .models import resolve_base

    t0, output = time.time(), Path(output)
    device = device or torch.device("cpu")
    items = load_items(adapters)
    comp = compose(items, method, fmt, rank, device)
    write_output(comp, resolve_base(base)[0], output)
    result = {"output": str(output), "method": method, "format": fmt, "adapters": comp.manifest["adapters"],
              "manifest": comp.manifest, "warnings": comp.warnings}
    if comp.relative_error is not None:
        result["relative_error"] = round(comp.relative_error, 6)
    result["seconds"] = round(time.time() - t0, 3)
    if verify:
        result |= verify_output(base, items, output, fmt, device, judge, progress)
    return result


def remove_adapter(model: str | Path, adapter: str | Path, output: str | Path, base: str = "toy",
                   device: torch.device | None = None) -> dict:
    """`duge-lora compose MODEL --remove A`: subtract A from a merged model whose manifest lists it."""
    import time

    from .models import resolve_base

    t0, model, output = time.time(), Path(model), Path(output)
    comp, state = removal(model, read_adapter(adapter), device)
    write_output(comp, str(model) if model.is_dir() else resolve_base(base)[0], output, state=state,
                 like=model / UNET_WEIGHTS if model.is_dir() else model)
    return {"output": str(output), "method": "remove", "format": comp.manifest["output_format"],
            "adapters": comp.manifest["adapters"], "removed": str(adapter), "manifest": comp.manifest,
            "seconds": round(time.time() - t0, 3)}


@torch.no_grad()
def apply_to_base(base, adapters: list[str]) -> Composition:
    """Merge adapters ('path[:weight]', in order) into a loaded base's UNet, in memory: the stack that sample,
    eval and the benchmark use. Same checks and the same sum as `compose`; refuses adapters of another base."""
    from .adapter import fingerprint

    items = load_items(adapters)
    comp = compose(items, "sum", "unet", device=base.device)
    fp = fingerprint(base.pipe.unet)
    for it in items:
        theirs = it.adapter.record.get("base", {}).get("fingerprint")
        if theirs and theirs != fp:
            raise DugeError(f"{it.adapter.path} was trained for another base (fingerprint {theirs}; {base.name!r} is {fp}).",
                            "Use the --base it was trained on.")
    modules = dict(base.pipe.unet.named_modules())
    for name, d in comp.deltas.items():
        w = modules[name].weight
        w.add_(d.to(w.device, w.dtype))
    return comp
