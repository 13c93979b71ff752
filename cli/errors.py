"""The one place where failures become what a user reads: one sentence on stderr and an exit code.

The library raises DugeError (what went wrong, what to do next, its exit code) and names its parameters in
backticks; here they become flags (`rank` -> --rank). Usage errors of the command line (an unknown option, a
missing or bad value) come from the click that typer bundles. A traceback is shown only with DUGE_DEBUG=1.
"""
from __future__ import annotations

import errno
import os
import re

from rich.markup import escape

from duge_lora.distributed import CHILD_ENV
from duge_lora.errors import ENVIRONMENT, TERMINATED, DugeError, PeerLost, signal_code

from .common import err

import click as _click_pkg
import typer

try:                                   # typer >= 0.20 bundles its own click; older ones use the click package
    from typer._click import exceptions as _bundled
except ImportError:                    # pragma: no cover
    _bundled = _click_pkg.exceptions

CLICK_ERRORS = (_bundled.ClickException, _click_pkg.ClickException)
ABORTS = (typer.Abort, _click_pkg.Abort)
EXITS = (typer.Exit, _click_pkg.exceptions.Exit)
FLAGS = {"output": "-o"}               # parameters whose flag is not --name-with-dashes
_PARAM = re.compile(r"`([a-z][a-z_]*)`")


class Interrupted(Exception):
    """A KeyboardInterrupt (Ctrl-C, or SIGTERM's Terminated) carried out of a command to handle(); typer would turn
    it into a silent exit 130."""


def flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def as_flags(text: str) -> str:
    """The library's `parameter` names as this command line's flags."""
    return _PARAM.sub(lambda m: flag(m.group(1)), text)


def say(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)


def handle(exc: BaseException, command: str | None = None) -> int:
    """Print one sentence for an expected failure and return its exit code; re-raise anything else."""
    debug = bool(os.environ.get("DUGE_DEBUG") or os.environ.get("DUGE_LORA_DEBUG"))
    if isinstance(exc, Interrupted):
        exc = exc.args[0]
    if isinstance(exc, PeerLost) and os.environ.get(CHILD_ENV):
        return exc.exit_code           # a rank started by launch(): the launching process says what happened
    if isinstance(exc, DugeError):
        if debug:
            raise exc
        say(as_flags(str(exc)))
        return exc.exit_code
    if isinstance(exc, EXITS):
        return exc.exit_code
    if isinstance(exc, _bundled.NoArgsIsHelpError if hasattr(_bundled, "NoArgsIsHelpError") else ()):
        err.print(exc.format_message(), highlight=False, markup=False)
        return 0
    if isinstance(exc, CLICK_ERRORS):
        where = f"duge-lora {command} --help" if command else "duge-lora --help"
        quote = ' Quote a value of several words, e.g. --concept "Mickey Mouse".' if "extra argument" in exc.format_message() else ""
        say(f"{exc.format_message().rstrip('.')}.{quote} Run `{where}` to see the options.")
        return exc.exit_code
    if isinstance(exc, (KeyboardInterrupt, *ABORTS)):
        code = signal_code(exc)
        say(f"interrupted ({'SIGTERM' if code == TERMINATED else 'Ctrl-C'}); no output was written or changed.")
        return code
    if os_error_of(exc) is not None:
        if debug:
            raise exc
        say(os_message(os_error_of(exc)))
        return ENVIRONMENT
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        if debug:
            raise exc
        say("Out of memory. Lower --batch or --rank, pass --gradient-checkpointing or --mixed-precision bf16, "
            "or use a machine with more memory; no output was written or changed.")
        return ENVIRONMENT
    raise exc


def os_error_of(exc: BaseException) -> OSError | None:
    """The operating-system error behind an exception: an OSError itself, the first failure of a folder copy
    (shutil.Error), or the `os error N` a safetensors write reports."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc
    if isinstance(exc, OSError) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        _, dst, why = exc.args[0][0]
        m = re.search(r"\[Errno (\d+)\]", str(why))
        return OSError(int(m.group(1)), os.strerror(int(m.group(1))), dst) if m else None
    if type(exc).__name__ == "SafetensorError":
        m = re.search(r"os error (\d+)", str(exc))
        return OSError(int(m.group(1)), os.strerror(int(m.group(1)))) if m else None
    return None


def os_message(exc: OSError) -> str:
    """One sentence for an error of the operating system: the disk full, a permission, a path."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"The disk is full{where}. Free some space and rerun; no existing output was changed."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Permission denied{where}. Choose a path you can write to."
    return f"{exc.strerror or exc}{where}. Check the path and rerun."
