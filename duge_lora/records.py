"""The typed adapter record (duge.json), adapter references, and the lineage check.

An adapter k records its request, the base it was trained on (by fingerprint) and its parents, the adapters
1..k-1 it was trained on top of (method.md, "One adapter per request"). Every reader of adapters goes through
resolve_adapter(ref) (a folder, a .safetensors file, or a stack folder for resolve_adapters; Hub ids come
later), and every combination of adapters through check_lineage().
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from .adapter import LoraSpec
from .errors import AdapterError, BadInput, LineageError, UsageError, param

SCHEMA = "duge-lora-adapter/1"


@dataclass(frozen=True)
class Request:
    """One unlearning request: erase `concept`, draw `anchor` instead, keep `preserve` intact."""
    concept: str
    anchor: str = ""
    preserve: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    axis: str | None = None          # the toy world's axis, or on other bases the concept's kind (worlds/kinds.py)
    defaults: tuple[str, ...] = field(default=(), compare=False)   # which fields were defaulted
    notes: tuple[str, ...] = field(default=(), compare=False)      # what was decided for the user (an anchor moved)
    templates: tuple[str, ...] = ()  # the user's prompt templates (`prompts` file); empty: the kind's own

    def to_dict(self) -> dict:
        d = asdict(self) | {k: list(getattr(self, k)) for k in ("preserve", "synonyms", "defaults", "notes", "templates")}
        return {k: v for k, v in d.items() if v or k not in ("notes", "templates")}

    @classmethod
    def from_dict(cls, d: dict) -> "Request":
        return cls(concept=d["concept"], anchor=d.get("anchor", ""), preserve=tuple(d.get("preserve", ())),
                   synonyms=tuple(d.get("synonyms", ())), axis=d.get("axis"), defaults=tuple(d.get("defaults", ())),
                   notes=tuple(d.get("notes", ())), templates=tuple(d.get("templates", ())))


@dataclass(frozen=True)
class BaseRef:
    """The base an adapter was made for: as named, where it was loaded from, and its fingerprint."""
    name: str = ""
    source: str = ""
    fingerprint: str | None = None


@dataclass(frozen=True)
class ParentRef:
    """An earlier adapter this one was trained on top of (order 1 = the first request)."""
    order: int
    concept: str
    sha256: str
    path: str = ""


@dataclass
class AdapterRecord:
    """duge.json: what an adapter erases, how it was made, on which base, after which adapters."""
    request: Request | None = None
    method: str = ""
    loss_weights: dict = field(default_factory=dict)
    hyperparameters: dict = field(default_factory=dict)
    lora: dict = field(default_factory=dict)
    base: BaseRef = field(default_factory=BaseRef)
    parents: list[ParentRef] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    seconds: float = 0.0
    final_losses: dict = field(default_factory=dict)
    created: str = ""
    seconds_per_step: float | None = None
    peak_mb: float | None = None
    format: str = SCHEMA
    duge_lora_version: str = ""

    @property
    def concept(self) -> str:
        return self.request.concept if self.request else "?"

    def to_dict(self) -> dict:
        """The JSON form (the order of duge.json; absent optional figures left out)."""
        d = {"format": self.format, "duge_lora_version": self.duge_lora_version,
             "request": self.request.to_dict() if self.request else None}
        for f in fields(self):
            if f.name not in d:
                d[f.name] = getattr(self, f.name)
        d["base"] = asdict(self.base)
        d["parents"] = [asdict(p) for p in self.parents]
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> "AdapterRecord":
        known = {f.name for f in fields(cls)} - {"request", "base", "parents"}
        req = d.get("request") or {}
        return cls(request=Request.from_dict(req) if "concept" in req else None,
                   base=BaseRef(**{k: v for k, v in (d.get("base") or {}).items() if k in ("name", "source", "fingerprint")}),
                   parents=[ParentRef(**{k: p.get(k, "") for k in ("order", "concept", "sha256", "path")}) for p in d.get("parents") or []],
                   **{k: v for k, v in d.items() if k in known})


@dataclass
class Adapter:
    """An adapter read from disk: its factors, shape, record and content hash."""
    path: Path                                              # the folder (or file) given
    weights: dict[str, tuple[torch.Tensor, torch.Tensor]]   # module -> (A, B)
    spec: LoraSpec
    record: AdapterRecord
    sha256: str
    hub: str | None = None                                  # user/name@commit when it came from the Hub

    @property
    def concept(self) -> str:
        return self.record.concept

    @property
    def ref(self) -> str:
        """How lineage and manifests name it: the Hub id at its commit (the same chain anywhere), else the path."""
        return self.hub or str(self.path)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- references
def resolve_adapter(ref: str | Path) -> Adapter:
    """Read the adapter a reference names: an adapter folder or its .safetensors file."""
    from .formats import adapter_weights_file, read_lora_file

    from .adapter_checks import check_factors, check_record

    given, hub = Path(ref), None
    if not given.exists() and is_hub_ref(str(ref)):
        from .hub import snapshot
        given, hub = snapshot(str(ref))
    file = adapter_weights_file(given)
    weights, spec, record = read_lora_file(file)
    check_record(record, file)
    check_factors(weights, file)
    try:
        typed = AdapterRecord.from_dict(record)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise AdapterError(f"{file} has a bad record ({exc}).", "Train it again with `duge-lora train`.") from None
    return Adapter(given, weights, spec, typed, file_sha256(file), hub)


def resolve_adapters(refs: list[str | Path]) -> list[Adapter]:
    """Read several references in order; a stack folder (stack.json) stands for its members, in their order."""
    from .stack import is_stack, stack_members

    out = []
    for ref in refs:
        out += [resolve_adapter(m) for m in stack_members(Path(ref))] if is_stack(Path(ref)) else [resolve_adapter(ref)]
    return out


def parse_weighted(ref: str) -> tuple[str, float]:
    """'ref[:weight]' -> (ref, weight); a weight that is not a finite number is a clear error."""
    if ":" not in ref:
        return ref, 1.0
    path, _, w = ref.rpartition(":")
    try:
        weight = float(w)
    except ValueError:
        raise UsageError(f"The weight in {ref!r} is not a number.", "Write ADAPTER:WEIGHT, for example erase-circle:0.5.") from None
    if not math.isfinite(weight):
        raise UsageError(f"The weight in {ref!r} is not finite.", "Use a finite number, for example 1.0.")
    return path, weight


_WEIGHTED = re.compile(r"^(.*):[-+0-9.eE]+$")
_HUB_REF = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def is_hub_ref(token: str) -> bool:
    """Whether a word names a Hub repo, user/name[@revision] (a path that exists always wins)."""
    return bool(_HUB_REF.match(token)) and not token.startswith((".", "/"))


def looks_like_adapter_ref(token: str) -> bool:
    """Whether a word names an adapter (an existing path, optionally :WEIGHT): how a front end tells where a
    list of adapters ends and, say, a prompt begins."""
    m = _WEIGHTED.match(token)
    name = m.group(1) if m else token
    return Path(token).exists() or Path(name).exists() or is_hub_ref(name)


def requests_of(adapters: list[Adapter]) -> list[Request]:
    """The requests of adapters that record one, in their order (the targets of a stack)."""
    return [a.record.request for a in adapters if a.record.request is not None]


# ----------------------------------------------------------------------------- lineage
def check_lineage(adapters: list[Adapter], base_fingerprint: str | None = None,
                  modules: list[str] | None = None) -> list[str]:
    """Refuse adapters that cannot go together: one listed twice, one made for another base (than
    `base_fingerprint`, or than each other), one adapting other modules (than `modules`, or than each other).
    Returns warnings about parents missing from the list or listed after their child."""
    shas = [a.sha256 for a in adapters]
    for k, sha in enumerate(shas):
        if sha in shas[:k]:
            raise LineageError(f"{adapters[k].path} is listed twice (same weights as {adapters[shas.index(sha)].path}).",
                               "List each adapter once; use ADAPTER:WEIGHT to scale one.")
    _check_bases(adapters, base_fingerprint)
    _check_modules(adapters, modules)
    warnings, position = [], {sha: k for k, sha in enumerate(shas)}
    for k, a in enumerate(adapters):
        for parent in a.record.parents:
            where = position.get(parent.sha256)
            if where is None:
                warnings.append(f"{a.path} was trained after {parent.concept!r}, which is not in this composition.")
            elif where > k:
                warnings.append(f"{a.path} was trained after {parent.concept!r}, which comes later here.")
    return warnings


def _check_bases(adapters: list[Adapter], base_fingerprint: str | None) -> None:
    fps = {a.record.base.fingerprint for a in adapters} - {None}
    if base_fingerprint is None and len(fps) > 1:
        raise LineageError(f"These adapters were made for different bases (fingerprints {', '.join(sorted(fps))}).",
                           f"Use only adapters trained on the same {param('base')}.", option="base")
    for a in adapters:
        fp = a.record.base.fingerprint
        if base_fingerprint is not None and fp and fp != base_fingerprint:
            raise LineageError(f"{a.path} was trained for another base (fingerprint {fp}; this base is {base_fingerprint}).",
                               f"Use the {param('base')} it was trained on, or leave it out.", option="base")


def _check_modules(adapters: list[Adapter], modules: list[str] | None) -> None:
    if modules is None:
        if len({frozenset(a.weights) for a in adapters}) > 1:
            raise LineageError(f"These adapters adapt different modules (their {param('targets')} differ).",
                               f"Use adapters trained with the same {param('targets')}.", option="targets")
        return
    for a in adapters:
        if sorted(a.weights) != sorted(modules):
            raise LineageError(f"{a.path} adapts other modules than this run ({', '.join(a.spec.targets)} vs the requested "
                               f"{param('targets')}).", f"Pass {param('targets')} {','.join(a.spec.targets)} so all adapters "
                               "of a stack adapt the same projections.", option="targets")


def _header(file: Path) -> dict:
    """A safetensors file's header metadata, or {} for a file that is not one (its reader will say why)."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), "pt") as f:
            return f.metadata() or {}
    except Exception:  # noqa: BLE001 - not a safetensors file: the reader chosen next says why, in one sentence
        return {}


def describe(path: Path) -> dict:
    """What a file is: an adapter (its request, lineage, shape) or a composed model (its manifest)."""
    from .formats import read_model

    from .formats import MANIFEST_KEY, WEIGHTS_NAME

    if not path.exists() and is_hub_ref(str(path)):
        path = resolve_adapter(str(path)).path                 # a Hub adapter, from the cache
    if not path.exists():
        raise BadInput(f"{path} does not exist.", "Check the path.")
    if path.is_dir() and not (path / WEIGHTS_NAME).exists() or path.is_file() and MANIFEST_KEY in _header(path):
        _, man, fmt = read_model(path)                 # a composed model: its errors name what is wrong with it
        return {"kind": "composed model", "path": str(path), "stored_as": fmt} | man
    a = resolve_adapter(path)                          # an adapter: its errors name what is wrong with it
    r = a.record.to_dict()
    return {"kind": "adapter", "path": str(path), "concept": a.concept, "request": r.get("request"),
            "method": r.get("method") or None, "base": r.get("base"), "parents": r.get("parents", []),
            "rank": a.spec.rank, "alpha": a.spec.alpha, "targets": list(a.spec.targets), "modules": len(a.weights),
            "parameters": sum(x.numel() + y.numel() for x, y in a.weights.values()), "sha256": a.sha256}
