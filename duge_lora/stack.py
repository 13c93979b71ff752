"""A stack folder: adapters trained one after another, with their order in stack.json.

    mystack/
      stack.json        {"format": "duge-lora-stack/1", "adapters": ["circle", "red", "mickey"]}
      circle/  red/  mickey/     adapter folders (adapter.py)
`duge-lora train --stack mystack` trains on top of every adapter listed and appends the new one.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import DugeError
from .io import atomic_path

STACK_FILE = "stack.json"


def slug(concept: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", concept.lower()).strip("-") or "concept"


def stack_members(folder: Path) -> list[Path]:
    """The adapter folders of a stack, in their recorded order ([] for a new, empty stack)."""
    index = folder / STACK_FILE
    if not index.exists():
        if folder.exists() and any(folder.iterdir()):
            raise DugeError(f"{folder} exists but is not a duge-lora stack (it has no {STACK_FILE}).",
                            "Pass an empty or new folder, or a folder made by `train --stack`.")
        return []
    try:
        names = json.loads(index.read_text())["adapters"]
    except (ValueError, KeyError) as exc:
        raise DugeError(f"{index} is not a valid stack index ({exc}).", "Fix or delete it.") from exc
    return [folder / n for n in names]


def append_to_stack(folder: Path, member: Path) -> None:
    index = folder / STACK_FILE
    members = [p.name for p in stack_members(folder)] if index.exists() else []
    members.append(member.name)
    with atomic_path(folder / STACK_FILE) as tmp:
        tmp.write_text(json.dumps({"format": "duge-lora-stack/1", "adapters": members}, indent=2) + "\n")
