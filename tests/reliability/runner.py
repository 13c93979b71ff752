"""Run one fault case in-process and say how it went: exit code, message, and what changed on disk."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from duge_lora_cli.main import main

from .cases import Case, fmt
from .conftest import snapshot


@dataclass
class Outcome:
    code: int | None
    stderr: str
    changed: list[str]          # files that existed before and differ or are gone
    created: list[str]          # new files not allowed by the case
    error: BaseException | None = None


LIMIT_S = 60          # a case that runs longer was accepted and started real work: a failure


class TooLong(BaseException):
    """Raised into a case that was still running after LIMIT_S seconds."""


def _too_long(signum, frame):
    raise TooLong(f"still running after {LIMIT_S} s: the bad input was accepted")


def context(workspace: SimpleNamespace, folder: Path) -> SimpleNamespace:
    return SimpleNamespace(**vars(workspace), t=folder, bad=folder / "bad")


def run_case(case: Case, workspace: SimpleNamespace, folder: Path, capture) -> Outcome:
    """Set the case up in `folder`, run its command line, and compare the files before and after."""
    ctx = context(workspace, folder)
    if case.setup:
        case.setup(ctx)
    argv = [fmt(a, ctx) for a in case.argv]
    saved = {k: os.environ.get(k) for k in case.env}
    os.environ.update({k: fmt(v, ctx) for k, v in case.env.items()})
    before = snapshot(workspace.ws, folder)
    code, error = None, None
    signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(LIMIT_S)
    try:
        code = main(argv)
    except BaseException as exc:  # noqa: BLE001 - an escaped exception is the failure this suite looks for
        error = exc
    finally:
        signal.alarm(0)
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    stderr = capture()
    after = snapshot(workspace.ws, folder)
    allowed = {fmt(c, ctx) for c in case.creates}
    changed = [p for p, h in before.items() if after.get(p) != h]
    created = [p for p in after if p not in before and not any(p == a or p.startswith(a + "/") for a in allowed)]
    return Outcome(code, stderr, changed, created, error)
