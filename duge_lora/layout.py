"""Where the tensor data of a safetensors file starts, and how to keep it at the source file's page alignment.

A safetensors file is an 8-byte header length, a JSON header, then the tensors' bytes. `load_file` maps the
source file, so copying a tensor to the output is a copy from source offset X to output offset Y; measured on an
SD-1.5-sized UNet (3.4 GB, fp32), writing it took 1.5 s when (X - Y) was a multiple of 4096 and 2-3.4 s when the
manifest in the header shifted it by 2,152 or 4,104 bytes (docs/benchmarks.md, issue 4). `aligned_metadata`
pads the manifest with spaces so the output's data section starts at the source's offset modulo 4096.

The header size is predicted the way safetensors 0.8 writes it (tensors ordered by dtype, last first in its
enum order, then by name; compact JSON; padded with spaces to a multiple of 8; tests/test_compose.py checks it
against real files). If that ever changes, only the alignment (speed) is lost, never correctness: the padding
is whitespace at the end of a JSON string.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

PAGE = 4096
# safetensors' Dtype enum, in its order (the header sorts tensors by this, descending)
_ORDER = ("BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16",
          "BF16", "I32", "U32", "F32", "F64", "I64", "U64")
_CODE = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16", torch.float16: "F16",
         torch.bfloat16: "BF16", torch.int32: "I32", torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def data_start(path: str | Path) -> int:
    """Byte offset of the first tensor's data in a safetensors file (8 + the header's length)."""
    with open(path, "rb") as f:
        return 8 + struct.unpack("<Q", f.read(8))[0]


def header_size(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> int | None:
    """The header length safetensors will write for `state` and `metadata` (None for a dtype we do not know)."""
    if any(t.dtype not in _CODE for t in state.values()):
        return None
    items = sorted(state.items(), key=lambda kv: (-_ORDER.index(_CODE[kv[1].dtype]), kv[0]))
    entries, offset = {}, 0
    for name, t in items:
        size = t.numel() * t.element_size()
        entries[name] = {"dtype": _CODE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    n = len(json.dumps({"__metadata__": metadata, **entries}, separators=(",", ":"), ensure_ascii=False).encode())
    return n + (-n) % 8


def aligned_metadata(state: dict[str, torch.Tensor], metadata: dict[str, str], key: str, like: str | Path) -> dict[str, str]:
    """`metadata` with spaces appended to metadata[key] so that the data of the file safetensors writes for `state`
    starts at the same offset modulo 4096 as the data of `like` (the file the tensors were loaded from)."""
    size = header_size(state, metadata)
    if size is None or not Path(like).exists():
        return metadata
    target = data_start(like) - 8                      # a multiple of 8, like every safetensors header
    pad = (target - size) % PAGE
    return metadata | {key: metadata[key] + " " * pad}
