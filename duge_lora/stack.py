"""A stack folder: adapters trained one after another, with their order in stack.json; and where a request goes.

    mystack/
      stack.json        {"format": "duge-lora-stack/1", "adapters": ["circle", "red", "mickey"]}
      circle/  red/  mickey/     adapter folders (formats.py)
`duge-lora train --stack mystack` trains on top of every adapter listed and appends the new one (plan_request,
then append_to_stack).
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import BadInput, DugeError, EnvironmentProblem, param
from .io import atomic_path

STACK_FILE = "stack.json"
STACK_FORMAT = "duge-lora-stack/1"
LOCK_FILE = ".lock"


def slug(concept: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", concept.lower()).strip("-") or "concept"


def is_stack(folder: Path) -> bool:
    return (folder / STACK_FILE).is_file()


def stack_members(folder: Path) -> list[Path]:
    """The adapter folders of a stack, in their recorded order ([] for a new, empty stack). Members are names of
    folders inside the stack: never paths out of it (../, absolute, a symlink out), which are refused unopened."""
    index = folder / STACK_FILE
    if folder.exists() and not folder.is_dir():
        raise DugeError(f"{folder} is a file, not a stack folder.", f"Pass a new or existing stack folder to {param('stack')}.",
                        option="stack")
    if not index.exists():
        if folder.exists() and any(p.name != LOCK_FILE for p in folder.iterdir()):
            raise DugeError(f"{folder} exists but is not a duge-lora stack (it has no {STACK_FILE}).",
                            f"Pass an empty or new folder, or a folder made by training with {param('stack')}.", option="stack")
        return []
    try:
        data = json.loads(index.read_text())
        names = data["adapters"]
        if data.get("format") != STACK_FORMAT or not isinstance(names, list):
            raise ValueError(f"format {data.get('format')!r}, adapters {type(names).__name__}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInput(f"{index} is not a valid stack index ({exc}).", "Fix or delete it.") from None
    return [_member(folder, n, index) for n in names]


def _member(folder: Path, name, index: Path) -> Path:
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise BadInput(f"{index} lists {name!r}, which is not the name of a folder inside the stack; duge-lora does "
                       "not follow paths out of a stack.", "List member folders by name only.")
    path = folder / name
    if path.is_symlink() and path.resolve().parent != folder.resolve():
        raise BadInput(f"{path} (listed in {index}) is a symlink out of the stack (to {path.resolve()}); duge-lora does "
                       "not follow it.", "Copy the adapter into the stack instead.")
    if not path.is_dir():
        raise BadInput(f"{index} lists {name!r}, but {path} is missing.", "Restore it, or remove it from the list.")
    return path


@contextmanager
def stack_lock(folder: Path) -> Iterator[None]:
    """Hold the stack's lock while a request is trained into it: a second writer is refused at once (one sentence,
    naming the holder), so stack.json lists every finished adapter exactly once. The lock dies with its process."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise EnvironmentProblem(f"Another duge-lora is training into the stack {folder} ({holder}).",
                                     "Wait for it to finish, then rerun this command (it trains on top of that adapter).",
                                     option="stack") from None
        f.truncate(0)
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        yield


def append_to_stack(folder: Path, member: Path) -> None:
    index = folder / STACK_FILE
    members = [p.name for p in stack_members(folder)] if index.exists() else []
    if member.name not in members:
        members.append(member.name)
    with atomic_path(folder / STACK_FILE) as tmp:
        tmp.write_text(json.dumps({"format": "duge-lora-stack/1", "adapters": members}, indent=2) + "\n")


@dataclass(frozen=True)
class RequestPlan:
    """Where one training request reads its parents from and writes its adapter to."""
    parents: list[Path]
    output: Path
    stack: Path | None = None

    def writing(self):
        """Where the adapter is written under: the stack's lock (a new stack's folder made first), or nothing."""
        return stack_lock(self.stack) if self.stack is not None else nullcontext()

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
    return RequestPlan(parents, output or stack / slug(concept), stack)
