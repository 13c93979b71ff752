"""The `duge-lora` console script. Importing the command line (typer, torch, diffusers) takes seconds; a Ctrl-C or
SIGTERM in that time would end in Python's traceback or a silent kill. Here it is one sentence and exit 130 or 143,
as it is once a command runs (errors.handle)."""
import signal
import sys


class _Terminated(BaseException):
    """SIGTERM while starting."""


def _terminated(signum, frame):
    raise _Terminated()


def run() -> None:
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        from .main import main
    except (KeyboardInterrupt, _Terminated) as exc:
        how, code = ("SIGTERM", 143) if isinstance(exc, _Terminated) else ("Ctrl-C", 130)
        print(f"error: interrupted ({how}) while starting; nothing was done.", file=sys.stderr)
        sys.exit(code)
    finally:
        signal.signal(signal.SIGTERM, previous)
    main()
