"""Makers of bad inputs for the fault suite: adapters, models and stacks damaged in one precise way each.

Every maker copies a good file from the suite's workspace and changes one thing, so a case fails for exactly
the reason it names.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

WEIGHTS = "pytorch_lora_weights.safetensors"


def read(file: Path) -> tuple[dict, dict]:
    with safe_open(str(file), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def adapter_with(src: Path, dest: Path, *, tensors=None, header=None, record=None) -> Path:
    """A copy of adapter folder `src` at `dest`, its tensors, header or record changed by the given functions."""
    shutil.copytree(src, dest)
    t, meta = read(src / WEIGHTS)
    if record is not None:
        rec = json.loads(meta["duge"])
        record(rec)
        meta["duge"] = json.dumps(rec)
        (dest / "duge.json").write_text(json.dumps(rec, indent=2))
    if tensors is not None:
        t = tensors(t)
    if header is not None:
        header(meta)
    save_file(t, str(dest / WEIGHTS), metadata=meta)
    return dest


def bytes_of(src: Path, dest: Path, content: bytes | None = None, keep: float | None = None) -> Path:
    """A copy of file or adapter folder `src` whose weights file holds `content`, or its first `keep` fraction."""
    if src.is_dir():
        shutil.copytree(src, dest)
        file = dest / WEIGHTS
    else:
        shutil.copy(src, dest)
        file = dest
    data = file.read_bytes()
    file.write_bytes(content if content is not None else data[: int(len(data) * keep)])
    return dest


# ----------------------------------------------------------------------------- tensor edits
def first_key(t: dict, suffix: str = "lora_A.weight") -> str:
    return sorted(k for k in t if k.endswith(suffix))[0]


def set_value(value: float):
    def edit(t):
        k = first_key(t)
        t[k] = t[k].clone()
        t[k][0, 0] = value
        return t
    return edit


def scaled(factor: float):
    def edit(t):
        return {k: v * factor for k, v in t.items()}
    return edit


def drop_b(t):
    del t[first_key(t, "lora_B.weight")]
    return t


def extra_key(t):
    t["text_encoder.some.weight"] = torch.zeros(2, 2)
    return t


def wrong_in_dim(t):
    k = first_key(t)
    t[k] = torch.zeros(t[k].shape[0], t[k].shape[1] + 3)
    return t


def wrong_rank(t):
    k = first_key(t)
    t[k] = torch.zeros(t[k].shape[0] + 1, t[k].shape[1])
    return t


def unknown_module(t):
    a, b = first_key(t), first_key(t, "lora_B.weight")
    t["unet.down_blocks.9.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight"] = t.pop(a)
    t["unet.down_blocks.9.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight"] = t.pop(b)
    return t


def integers(t):
    return {k: v.to(torch.int32) for k, v in t.items()}


def one_dim(t):
    k = first_key(t)
    t[k] = t[k].flatten()
    return t


# ----------------------------------------------------------------------------- stacks and models
def stack_of(members: dict[str, Path], dest: Path, names: list | None = None, raw: str | None = None) -> Path:
    """A stack folder with copies of `members` (name -> adapter folder) and a stack.json listing `names`."""
    dest.mkdir()
    for name, src in members.items():
        shutil.copytree(src, dest / name)
    text = raw if raw is not None else json.dumps({"format": "duge-lora-stack/1", "adapters": names or list(members)})
    (dest / "stack.json").write_text(text)
    return dest


def model_without_manifest(src: Path, dest: Path) -> Path:
    t, meta = read(src)
    meta.pop("duge_manifest", None)
    save_file(t, str(dest), metadata=meta)
    return dest


def model_with_nan(src: Path, dest: Path) -> Path:
    t, meta = read(src)
    k = sorted(k for k in t if "attn2.to_k" in k)[0]
    t[k] = t[k].clone()
    t[k].view(-1)[0] = float("nan")
    save_file(t, str(dest), metadata=meta)
    return dest
