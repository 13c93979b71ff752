"""One exception family for every expected failure; the CLI (duge_lora_cli/errors.py) turns each into one sentence.

Each error carries what went wrong, what to do next, the exit code, and the parameter at fault, so the message
is complete without a traceback (architecture.md: "what failed, why, what to do next"). The library names its
parameters in backticks (`rank`, `overwrite`); a front end renders them its own way (the CLI as --rank,
--overwrite), so no CLI flag is spelled out here.
"""
from __future__ import annotations


def param(name: str) -> str:
    """How a message names one of the library's parameters (a front end may rewrite it, e.g. as a flag)."""
    return f"`{name}`"


class DugeError(Exception):
    """An expected failure: bad input, missing file, refused overwrite, ..."""
    exit_code = 1

    def __init__(self, what: str, hint: str = "", *, option: str | None = None):
        super().__init__(what)
        self.what, self.hint, self.option = what, hint, option

    def __str__(self) -> str:
        return f"{self.what} {self.hint}".strip()


class BaseNotFound(DugeError):
    """The base is neither 'toy', a diffusers folder, nor a reachable Hub id."""


class UnknownWords(DugeError):
    """A prompt uses words the toy model's vocabulary does not have."""

    def __init__(self, words: list[str], prompt: str):
        super().__init__(f"The prompt {prompt!r} uses words the toy model does not know: {', '.join(words)}.",
                         "Run `duge-lora toy vocab` to list the words it knows.")
        self.words = words


class OutputError(DugeError):
    """An output path cannot be written (missing folder, existing file without `overwrite`)."""


class AdapterError(DugeError):
    """An adapter file is missing, a pickle, corrupt, or not a UNet LoRA."""


class LineageError(DugeError):
    """Adapters that cannot go together: listed twice, made for another base, or adapting other modules."""


class NoJudge(DugeError):
    """An operation needs a judge, but the base's world has none."""


class TrainingStopped(DugeError):
    """Training stopped early (Ctrl-C or a non-finite loss); a checkpoint allows `resume`."""
    interrupted = False              # True for Ctrl-C, False for a non-finite loss


class BenchInterrupted(DugeError):
    """The bench was interrupted; what finished is kept and the same command resumes it."""
    exit_code = 130
