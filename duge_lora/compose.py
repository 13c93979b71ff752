"""Compose adapters into the cumulatively unlearned model: coordinates merge.py, formats.py and verify.py.

method.md, "Composition": theta = theta_0 + sum_i w_i Delta_W_i, Delta_W_i = (alpha_i/r_i) B_i A_i.
- sum: fuse the sum into the base weights (exact to float rounding);
- cat: one LoRA of rank sum r_i equal to the stack (peft's `cat`, done by hand: diffusers' UNet does not expose it);
- svd: the per-module sum truncated to rank R (Eckart-Young), with its relative Frobenius error;
- remove: subtract w_j Delta_W_j from a merged model whose manifest lists adapter j.
apply_to_base is the same sum, in memory: what sample, eval, train (for the parents) and the bench use.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import __version__
from .errors import BadInput, UsageError, VerificationFailed, param
from .adapter import file_fingerprint
from .adapter_checks import check_fit
from .formats import FACTOR_FORMATS, UNET_WEIGHTS, base_folder, read_model, unet_shapes, write_composed
from .io import check_paths, publish, stage_folder
from .merge import Part, add_delta, cat_factors, low_rank, merge_deltas, relative_error, summed_delta
from .records import Adapter, check_lineage, parse_weighted, resolve_adapter, resolve_adapters

METHODS = ("sum", "cat", "svd")


@dataclass
class Item:
    """One adapter of a composition, at its weight w_i."""
    adapter: Adapter
    weight: float = 1.0

    def part(self, module: str) -> Part:
        a, b = self.adapter.weights[module]
        return a, b, self.weight * self.adapter.spec.scaling


def load_items(refs: list[str]) -> list[Item]:
    """'ref[:weight]' references -> items, in order; a stack folder stands for its members (each at that weight)."""
    return [Item(a, w) for path, w in map(parse_weighted, refs) for a in resolve_adapters([path])]


def check_items(items: list[Item], base_fingerprint: str | None = None) -> list[str]:
    """Refuse what cannot be composed (records.check_lineage); return the lineage warnings."""
    if not items:
        raise UsageError("No adapters to compose.", "Name at least one adapter folder.")
    return check_lineage([i.adapter for i in items], base_fingerprint)


def manifest(items: list[Item], method: str, fmt: str, extra: dict | None = None) -> dict:
    """What a composed output is made of (written in its header and as JSON beside it)."""
    base = items[0].adapter.record.base
    fp = next((i.adapter.record.base.fingerprint for i in items), None)
    return {
        "format": "duge-lora-composition/1",
        "duge_lora_version": __version__,
        "method": method,
        "output_format": fmt,
        "base": {"fingerprint": fp, "name": base.name, "source": base.source},
        "adapters": [{"order": k + 1, "concept": i.adapter.concept, "sha256": i.adapter.sha256, "weight": i.weight,
                      "path": i.adapter.ref, "rank": i.adapter.spec.rank} for k, i in enumerate(items)],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    } | (extra or {})


@dataclass
class Composition:
    """What compose produced, in memory: per-module Delta_W (unet/pipeline) or LoRA factors (lora), and the manifest."""
    manifest: dict
    deltas: dict[str, torch.Tensor] = field(default_factory=dict)
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    relative_error: float | None = None
    warnings: list[str] = field(default_factory=list)


def _svd(items: list[Item], rank: int, device: torch.device) -> tuple[dict, float]:
    out, dropped, total = {}, 0.0, 0.0
    for module in items[0].adapter.weights:
        a, b, d2, t2 = low_rank(summed_delta([i.part(module) for i in items], device), rank)
        out[module] = (a.cpu(), b.cpu())
        dropped, total = dropped + d2, total + t2
    return out, relative_error(dropped, total)


def check_options(method: str, rank: int | None, fmt: str | None, output: Path, remove=None) -> None:
    """compose's settings, before any file is read: a known method and format, a rank only (and always) for svd."""
    from .formats import output_format

    check_method(method, rank, rank_unused_ok=bool(remove))
    output_format(Path(output), fmt)


def check_method(method: str, rank: int | None, rank_unused_ok: bool = False) -> None:
    """A known method, with a rank budget of at least 1 for svd (and, unless `rank_unused_ok`, only for svd)."""
    if method not in METHODS:
        raise UsageError(f"Unknown {param('method')} {method!r}.", f"Choose one of {', '.join(METHODS)}.", option="method")
    if method == "svd" and (rank is None or rank < 1):
        raise UsageError(f"{param('method')} svd needs a rank budget of at least 1" + (f", got {rank}." if rank is not None else "."),
                         f"Pass {param('rank')} R, for example 8.", option="rank")
    if method != "svd" and rank is not None and not rank_unused_ok:
        raise UsageError(f"{param('rank')} is the rank budget of {param('method')} svd; {method} does not use it.",
                         f"Add {param('method')} svd, or leave {param('rank')} out.", option="rank")


def compose(items: list[Item], method: str = "sum", fmt: str = "unet", rank: int | None = None,
            device: torch.device | None = None, base_fingerprint: str | None = None,
            shapes: dict[str, tuple[int, ...]] | None = None) -> Composition:
    """The composed update in memory: per-module Delta_W (unet/pipeline formats) or LoRA factors (lora format).
    Refuses what cannot be composed (check_items), and, given the base's module `shapes`, adapters that do not fit it."""
    check_method(method, rank, rank_unused_ok=True)
    warnings = check_items(items, base_fingerprint)
    for i in items if shapes is not None else ():
        check_fit(i.adapter, shapes)
    device = device or torch.device("cpu")
    modules = list(items[0].adapter.weights)
    rel, factors = None, {}
    if method == "svd":
        factors, rel = _svd(items, rank, device)
    elif method == "cat" or fmt in FACTOR_FORMATS:  # a sum written as one LoRA is exactly the cat
        factors = {m: cat_factors([i.part(m) for i in items]) for m in modules}
    comp = Composition(manifest(items, method, fmt, {"relative_error": rel} if rel is not None else None),
                       relative_error=rel, warnings=warnings)
    if fmt in FACTOR_FORMATS:
        comp.factors = factors
    elif factors:
        comp.deltas = {m: summed_delta([(a, b, 1.0)], device) for m, (a, b) in factors.items()}
    else:
        comp.deltas = {m: summed_delta([i.part(m) for i in items], device) for m in modules}
    return comp


def merged_state(state: dict[str, torch.Tensor], deltas: dict[str, torch.Tensor], sign: float = 1.0) -> dict:
    """A UNet state dict with sign * Delta_W added into each adapted weight (merge.add_delta's one dtype rule: the
    adapted weights are stored in float32; every other tensor keeps its stored dtype, so the file is about the
    size of the base)."""
    out = dict(state)
    for module, d in deltas.items():
        key = f"{module}.weight"
        if key not in out:
            raise BadInput(f"The base has no weight {key} that the adapter adapts.", "Compose onto the base the adapters were trained for.")
        out[key] = add_delta(out[key], sign * d, torch.float32)
    return out


def write_output(comp: Composition, source: str, output: Path, state: dict | None = None, like: Path | None = None) -> None:
    """Write a composition in its format; `state` (read from the file `like`) replaces the base UNet (for remove)."""
    from safetensors.torch import load_file

    if comp.manifest["output_format"] in FACTOR_FORMATS:
        write_composed(output, comp.manifest, factors=comp.factors)
        return
    folder = base_folder(source)
    unet = state if state is not None else load_file(str(folder / UNET_WEIGHTS))
    write_composed(output, comp.manifest, unet=merged_state(unet, comp.deltas), base=folder, like=like)


def removal(model: Path, adapter: Adapter, device: torch.device | None = None) -> tuple[Composition, dict]:
    """The composition that subtracts `adapter` from a merged model whose manifest lists it, and the model's weights."""
    state, man, fmt = read_model(model)
    entry = next((a for a in man["adapters"] if a["sha256"] == adapter.sha256), None)
    if entry is None:
        listed = ", ".join(a["concept"] for a in man["adapters"]) or "none"
        raise BadInput(f"{model} does not contain {adapter.path} (its manifest lists: {listed}).",
                        "Remove only an adapter that was composed into this model.")
    if man.get("method") == "svd":
        raise BadInput(f"{model} was composed with {param('method')} svd, so {adapter.concept!r} cannot be subtracted exactly.",
                        "Compose again without it instead.")
    item = Item(adapter, -entry["weight"])
    deltas = {m: summed_delta([item.part(m)], device or "cpu") for m in adapter.weights}
    new = dict(man) | {"adapters": [a for a in man["adapters"] if a["sha256"] != adapter.sha256],
                       "removed": man.get("removed", []) + [entry], "output_format": fmt}
    return Composition(manifest=new, deltas=deltas), state


# ----------------------------------------------------------------------------- the API the command mirrors
@dataclass
class ComposeResult:
    """What `duge-lora compose` did: the output, its manifest, warnings, timing and (when verified) the check."""
    output: str
    method: str
    format: str
    adapters: list[dict]
    manifest: dict
    seconds: float
    warnings: list[str] = field(default_factory=list)
    relative_error: float | None = None
    removed: str | None = None
    verification: object | None = None      # verify.Verification

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v is not None and k != "verification"}
        return d | (self.verification.to_dict() if self.verification is not None else {})


def compose_adapters(adapters: list[str], output: str | Path, base: str = "toy", method: str = "sum",
                     fmt: str | None = None, rank: int | None = None, device: torch.device | None = None,
                     verify: bool = True, judge: bool = True, progress=None, mixed_precision: str = "auto") -> ComposeResult:
    """`duge-lora compose` as a function: write the composition of adapters ('ref[:weight]') and verify it (against
    the live stack on the base in `mixed_precision`, models.resolve_precision). The merge itself is float32."""
    from .formats import output_format
    from .models import resolve_base
    from .verify import verify_output

    t0, output = time.time(), Path(output)
    fmt, device = output_format(output, fmt), device or torch.device("cpu")
    items = load_items(adapters)
    check_paths(output, [i.adapter.path for i in items])
    folder = base_folder(resolve_base(base)[0])
    fp = file_fingerprint(folder / UNET_WEIGHTS)
    comp = compose(items, method, fmt, rank, device, base_fingerprint=fp, shapes=unet_shapes(folder))
    result = ComposeResult(str(output), method, fmt, comp.manifest["adapters"], comp.manifest, 0.0, comp.warnings,
                           None if comp.relative_error is None else round(comp.relative_error, 6))
    stage = stage_folder(output)          # built and checked under its own name, published only when it passes
    try:
        write_output(comp, str(folder), stage / output.name)
        result.seconds = round(time.time() - t0, 3)
        if verify:
            result.verification = verify_output(base, items, stage / output.name, fmt, device, judge, progress,
                                                mixed_precision)
            _reject(result.verification.problem(exact=method != "svd"), stage, output)
        publish(stage, output)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return result


def _reject(problem: str | None, stage: Path, output: Path) -> None:
    """Keep a composed model that failed verification aside (OUTPUT.rejected), never at the output path."""
    if problem is None:
        return
    rejected = output.with_name(output.name + ".rejected")
    shutil.rmtree(rejected, ignore_errors=True) if rejected.is_dir() else rejected.unlink(missing_ok=True)
    os.replace(stage / output.name, rejected)
    raise VerificationFailed(f"The composed model failed verification: {problem}. It was kept aside as {rejected}; "
                             f"{output} was not written.", "Check the adapters with `duge-lora inspect`, or compose "
                             f"with {param('device')} cpu.")


def remove_adapter(model: str | Path, adapter: str | Path, output: str | Path, base: str = "toy",
                   device: torch.device | None = None) -> ComposeResult:
    """Subtract adapter A from a merged model whose manifest lists it (what `compose` does with its remove option)."""
    from .models import resolve_base

    t0, model, output = time.time(), Path(model), Path(output)
    check_paths(output, [model, Path(adapter)])
    comp, state = removal(model, resolve_adapter(adapter), device)
    write_output(comp, str(model) if model.is_dir() else resolve_base(base)[0], output, state=state,
                 like=model / UNET_WEIGHTS if model.is_dir() else model)
    return ComposeResult(str(output), "remove", comp.manifest["output_format"], comp.manifest["adapters"],
                         comp.manifest, round(time.time() - t0, 3), removed=str(adapter))


@torch.no_grad()
def apply_items(base, items: list[Item], base_fingerprint: str | None = None) -> Composition:
    """Merge items (in order) into a loaded base's UNet, in memory: the same checks and the same sum as `compose`;
    adapters made for another base (than `base_fingerprint`, default: Base.fingerprint) are refused."""

    if not items:
        return Composition(manifest={})
    fp = base_fingerprint or base.fingerprint
    shapes = {n: tuple(m.weight.shape) for n, m in base.pipe.unet.named_modules() if isinstance(m, torch.nn.Linear)}
    comp = compose(items, "sum", "unet", device=base.device, base_fingerprint=fp, shapes=shapes)
    merge_deltas(dict(base.pipe.unet.named_modules()), comp.deltas)
    return comp


def apply_to_base(base, adapters: list[str]) -> Composition:
    """apply_items for 'ref[:weight]' references: the stack that sample, eval and the bench use."""
    return apply_items(base, load_items(adapters))
