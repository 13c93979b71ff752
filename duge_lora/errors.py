"""One exception family for every expected failure; the CLI turns each into one sentence + exit 1.

Each error carries what went wrong and what to do next, so the message is complete without a
traceback (architecture.md: "what failed, why, what to do next").
"""
from __future__ import annotations


class DugeError(Exception):
    """An expected failure: bad input, missing file, refused overwrite, ..."""

    def __init__(self, what: str, hint: str = ""):
        super().__init__(what)
        self.what, self.hint = what, hint

    def __str__(self) -> str:
        return f"{self.what} {self.hint}".strip()


class BaseNotFound(DugeError):
    """--base is neither 'toy', a diffusers folder, nor a reachable Hub id."""


class UnknownWords(DugeError):
    """A prompt uses words the toy model's vocabulary does not have."""

    def __init__(self, words: list[str], prompt: str):
        super().__init__(f"The prompt {prompt!r} uses words the toy model does not know: {', '.join(words)}.",
                         "Run `duge-lora toy vocab` to list the words it knows.")
        self.words = words


class OutputError(DugeError):
    """An output path cannot be written (missing folder, existing file without --overwrite)."""


class NotToyWorld(DugeError):
    """An operation needs the toy world's judge, but the base is another model."""
