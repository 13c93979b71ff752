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


# exit codes (docs/reliability.md): one per class of failure
FAILED, USAGE, BAD_INPUT, ENVIRONMENT, INTERRUPTED, TERMINATED = 1, 2, 3, 4, 130, 143
PEER_LOST = 5          # a rank of a data-parallel run whose peer stopped (distributed.py)


class DugeError(Exception):
    """An expected failure: bad input, missing file, refused overwrite, ...

    Its exit code is its class's `code`; a plain DugeError that names the `option` at fault is a usage error (2),
    any other one a failed operation (1)."""
    code: int | None = None

    def __init__(self, what: str, hint: str = "", *, option: str | None = None):
        super().__init__(what)
        self.what, self.hint, self.option = what, hint, option

    @property
    def exit_code(self) -> int:
        return self.code if self.code is not None else (USAGE if self.option else FAILED)

    def __str__(self) -> str:
        return f"{self.what} {self.hint}".strip()


class UsageError(DugeError):
    """An option or argument that cannot work: out of range, unknown, contradicting another."""
    code = USAGE


class BadInput(DugeError):
    """An input file or folder is missing, corrupt, or not what the command needs."""
    code = BAD_INPUT


class EnvironmentProblem(DugeError):
    """The machine cannot do it: an output that cannot be written, a full disk, no GPU, no network."""
    code = ENVIRONMENT


class BaseNotFound(BadInput):
    """The base is neither 'toy', a diffusers folder, nor a reachable Hub id."""


class UnknownWords(UsageError):
    """A prompt uses words the toy model's vocabulary does not have."""

    def __init__(self, words: list[str], prompt: str):
        super().__init__(f"The prompt {prompt!r} uses words the toy model does not know: {', '.join(words)}.",
                         "Run `duge-lora toy vocab` to list the words it knows.")
        self.words = words


class OutputError(EnvironmentProblem):
    """An output path cannot be written (missing folder, existing file without `overwrite`)."""


class AdapterError(BadInput):
    """An adapter file is missing, a pickle, corrupt, or not a UNet LoRA."""


class LineageError(BadInput):
    """Adapters that cannot go together: listed twice, made for another base, or adapting other modules."""


class PeerLost(DugeError):
    """Another rank of this data-parallel run stopped (killed, or failed), so a collective cannot complete."""
    code = PEER_LOST


class NoJudge(DugeError):
    """An operation needs a judge, but the base's world has none."""


class TrainingStopped(DugeError):
    """Training stopped early (Ctrl-C, SIGTERM or a non-finite loss); a checkpoint allows `resume`."""
    interrupted = False              # True for Ctrl-C and SIGTERM, False for a non-finite loss
    signal_code: int | None = None   # INTERRUPTED or TERMINATED when a signal stopped it

    @property
    def exit_code(self) -> int:
        return self.signal_code or FAILED


class BenchInterrupted(DugeError):
    """The bench was interrupted; what finished is kept and the same command resumes it."""
    code = INTERRUPTED


class VerificationFailed(DugeError):
    """A composed model is not the stack it claims to be (non-finite, or beyond tolerance); it is kept aside."""
    code = FAILED


class Interrupted(DugeError):
    """Ctrl-C or SIGTERM stopped a command; what it says was kept (or that nothing was written)."""

    def __init__(self, what: str, hint: str = "", *, signal_code: int = INTERRUPTED):
        super().__init__(what, hint)
        self.code = signal_code


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C (the CLI installs the handler) so that every path that keeps work on an
    interruption (a training checkpoint, a bench's finished steps) keeps it on a polite kill too."""


def signal_code(exc: BaseException) -> int:
    """The exit code of an interruption: 143 for SIGTERM, 130 for Ctrl-C."""
    return TERMINATED if isinstance(exc, Terminated) else INTERRUPTED
