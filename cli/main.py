"""The `duge-lora` entry point: the typer app, its commands, and the one place failures are caught (errors.py)."""
from __future__ import annotations

import os
import signal
import sys

import typer

from duge_lora import __version__
from duge_lora.errors import DugeError, Terminated

from . import common, toy
from .attack import attack_command
from .bench import bench_command
from .compose import compose_command, inspect_command
from .errors import ABORTS, EXITS, Interrupted, handle
from .evaluate import eval_command
from .hub import app as hub_app
from .hub import pull_command, push_command
from .sample import sample
from .train import train
from .variadic import make_variadic

app = typer.Typer(name="duge-lora", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Continual concept unlearning for text-to-image models: one DUGE LoRA adapter per request.")
app.command("sample")(sample)
app.command("eval")(eval_command)
app.command("train")(train)
app.command("compose")(compose_command)
app.command("inspect")(inspect_command)
app.command("bench")(bench_command)
app.command("attack")(attack_command)
app.command("push")(push_command)
app.command("pull")(pull_command)
app.add_typer(toy.app, name="toy")
app.add_typer(hub_app, name="hub")


def _quiet_libraries() -> None:
    """Silence what diffusers/transformers print for library authors (loading bars, 'no LoRA keys for the text
    encoder', 'torchvision not installed'); our own progress bars say what matters. Environment variables only
    (read when those libraries are first imported), so a command that never loads a model starts fast."""
    for var, value in (("DIFFUSERS_VERBOSITY", "error"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(var, value)


def command_line():
    """The click command of the app, with its multi-value options (variadic.py). A Ctrl-C or SIGTERM inside a
    command is carried past typer as errors.Interrupted: typer turns a KeyboardInterrupt into a silent exit 130."""
    command = typer.main.get_command(app)
    make_variadic(command)
    for name in ("make_context", "invoke"):               # what typer runs inside its KeyboardInterrupt handler
        setattr(command, name, _keeping_interrupts(getattr(command, name)))
    return command


def _keeping_interrupts(method):
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except KeyboardInterrupt as exc:
            raise Interrupted(exc) from exc
    return wrapper


RECEIVED: list[int] = []          # the signals this process received through _interrupt


def _interrupt(signum, frame):
    """Ctrl-C as Python's own handler (KeyboardInterrupt), and SIGTERM the same way (Terminated: training keeps a
    checkpoint, the bench its finished steps); both recorded, because native code can turn the KeyboardInterrupt
    raised inside its callbacks into another error (safetensors' load_file raises a ValueError)."""
    RECEIVED.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _as_interrupt(exc: BaseException) -> BaseException:
    """An unexpected error after a signal is that signal's interruption, not a failure to show as a traceback."""
    if RECEIVED and not isinstance(exc, (KeyboardInterrupt, Interrupted, DugeError, *ABORTS, *EXITS)):
        return Terminated() if RECEIVED[0] == signal.SIGTERM else KeyboardInterrupt()
    return exc


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; expected failures print one sentence to stderr and exit non-zero (errors.py)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        print(f"duge-lora {__version__}")
        return 0
    _quiet_libraries()
    common.ARGV = args
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK", "0") != "0":
        common.out.quiet = common.err.quiet = True      # a data-parallel rank other than 0: rank 0 speaks for all
    signals = (signal.SIGINT, signal.SIGTERM) if argv is None else ()     # the process's own signals, not a test's
    for s in signals:
        signal.signal(s, _interrupt)
    try:
        code = command_line().main(args=args, prog_name="duge-lora", standalone_mode=False)
    except BaseException as exc:          # noqa: BLE001 - handle() re-raises what is not an expected failure
        if isinstance(exc, SystemExit):
            raise
        code = handle(_as_interrupt(exc), next((a for a in args if not a.startswith("-")), None))
    finally:
        for s in signals:                 # the work is over: a signal during the interpreter's exit (a second or more
            signal.signal(s, signal.SIG_IGN)   # with torch loaded) would only turn its result into a silent kill
    code = code if isinstance(code, int) else 0
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
