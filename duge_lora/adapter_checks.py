"""Validation of an adapter on load, before any maths: its record, its factors, and their fit to a base.

An adapter may come from a stranger. Every kind of mismatch is one AdapterError naming the file and what is wrong
(docs/reliability.md): a record of another schema or with fields of the wrong type, factors that are not
floating point, not 2-D, of different ranks, or not finite, and modules the base lacks or has in another shape.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import AdapterError

SCHEMA_PREFIX = "duge-lora-adapter/"
SUPPORTED = 1
_FIX = "It may be corrupt or made by another tool; train it again with `duge-lora train`."
# field -> the JSON type it must have (None allowed where the record may leave it out)
_TYPES = {"request": dict, "method": str, "loss_weights": dict, "hyperparameters": dict, "lora": dict, "base": dict,
          "parents": list, "data": dict, "seconds": (int, float), "final_losses": dict, "created": str, "format": str}


def check_record(record, file: Path) -> None:
    """The `duge` record of an adapter: a JSON object of this schema version with fields of the right types."""
    bad = lambda what: AdapterError(f"{file} has a bad record: {what}.", _FIX)  # noqa: E731
    if not isinstance(record, dict):
        raise bad(f"it is a {type(record).__name__}, not a JSON object")
    fmt = record.get("format")
    if fmt is not None:
        version = fmt[len(SCHEMA_PREFIX):] if isinstance(fmt, str) and fmt.startswith(SCHEMA_PREFIX) else None
        if version is None or not version.isdigit():
            raise bad(f"its format is {fmt!r}, not {SCHEMA_PREFIX}{SUPPORTED}")
        if int(version) > SUPPORTED:
            raise AdapterError(f"{file} was written by a newer duge-lora (format {fmt}; this one reads "
                               f"{SCHEMA_PREFIX}{SUPPORTED}).", "Upgrade duge-lora (pip install -U duge-lora).")
    for key, kind in _TYPES.items():
        if record.get(key) is not None and not isinstance(record[key], kind):
            raise bad(f"its {key!r} is a {type(record[key]).__name__}")
    req = record.get("request") or {}
    if req and not isinstance(req.get("concept"), str):
        raise bad("its request names no concept")
    for name in ("rank", "alpha"):
        value = (record.get("lora") or {}).get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise bad(f"its lora {name} is {value!r}, not a number")
    fp = (record.get("base") or {}).get("fingerprint")
    if fp is not None and not isinstance(fp, str):
        raise bad(f"its base fingerprint is {fp!r}, not a string")
    for p in record.get("parents") or []:
        if not isinstance(p, dict) or not isinstance(p.get("order"), int) or not isinstance(p.get("sha256"), str):
            raise bad(f"a parent entry is {p!r} (it needs an integer order and a sha256)")


def check_factors(weights: dict[str, tuple[torch.Tensor, torch.Tensor]], file: Path) -> None:
    """LoRA factors: floating point, A (r, in) and B (out, r) of one rank r for every module, all finite."""
    ranks = set()
    for module, (a, b) in weights.items():
        where = f"{file}: {module}"
        if not (a.is_floating_point() and b.is_floating_point()):
            raise AdapterError(f"{where} holds {a.dtype} factors, not floating point.", _FIX)
        if a.dim() != 2 or b.dim() != 2:
            raise AdapterError(f"{where} has factors of {a.dim()} and {b.dim()} dimensions; LoRA factors are matrices.", _FIX)
        if a.shape[0] != b.shape[1]:
            raise AdapterError(f"{where} has factors of different ranks (A has {a.shape[0]} rows, B {b.shape[1]} columns).", _FIX)
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            raise AdapterError(f"{where} holds NaN or infinite values.", "Such an adapter would break the model; train it again.")
        ranks.add(a.shape[0])
    if len(ranks) > 1:
        raise AdapterError(f"{file} mixes ranks {sorted(ranks)} across modules.", _FIX)


def check_fit(adapter, shapes: dict[str, tuple[int, ...]]) -> None:
    """Every module the adapter adapts exists in the base (`shapes`: module -> weight shape) with B A's shape."""
    for module, (a, b) in adapter.weights.items():
        if module not in shapes:
            raise AdapterError(f"{adapter.path} adapts {module}, which this base does not have.",
                               "Use the base it was trained for (see `duge-lora inspect` on it).")
        if tuple(shapes[module]) != (b.shape[0], a.shape[1]):
            raise AdapterError(f"{adapter.path} adapts {module} as {b.shape[0]}x{a.shape[1]}, but the base's weight is "
                               f"{'x'.join(map(str, shapes[module]))}.", "Use the base it was trained for.")
