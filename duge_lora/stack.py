"""A stack folder: adapters trained one after another, with their order in stack.json; and where a request goes.

    mystack/
      stack.json        {"format": "duge-lora-stack/1", "adapters": ["circle", "red", "mickey"]}
      circle/  red/  mickey/     adapter folders (formats.py)
`duge-lora train --stack mystack` trains on top of every adapter listed and appends the new one (plan_request,
then append_to_stack).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DugeError, param
from .io import atomic_path

STACK_FILE = "stack.json"


def slug(concept: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", concept.lower()).strip("-") or "concept"


def is_stack(folder: Path) -> bool:
    return (folder / STACK_FILE).is_file()


def stack_members(folder: Path) -> list[Path]:
    """The adapter folders of a stack, in their recorded order ([] for a new, empty stack)."""
    index = folder / STACK_FILE
    if not index.exists():
        if folder.exists() and any(folder.iterdir()):
            raise DugeError(f"{folder} exists but is not a duge-lora stack (it has no {STACK_FILE}).",
                            f"Pass an empty or new folder, or a folder made by training with {param('stack')}.", option="stack")
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


@dataclass(frozen=True)
class RequestPlan:
    """Where one training request reads its parents from and writes its adapter to."""
    parents: list[Path]
    output: Path
    stack: Path | None = None

    def finish(self) -> None:
        """After the adapter is written: append it to the stack, if there is one."""
        if self.stack is not None:
            append_to_stack(self.stack, self.output)


def plan_request(concept: str, after: list[str] | None = None, stack: Path | None = None,
                 output: Path | None = None) -> RequestPlan:
    """The parents and output of a request: the adapters `after`, or every member of `stack` (created if new, and
    the output inside it by default); the default output is erase-<concept>."""
    if after and stack:
        raise DugeError(f"{param('after')} and {param('stack')} both name the earlier adapters.", "Use one of them.",
                        option="stack")
    if stack is None:
        return RequestPlan([Path(p) for p in after or []], output or Path(f"erase-{slug(concept)}"))
    parents = stack_members(stack)
    stack.mkdir(parents=True, exist_ok=True)
    return RequestPlan(parents, output or stack / slug(concept), stack)
