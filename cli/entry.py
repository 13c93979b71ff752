"""The `duge-lora` console script. Importing the command line (typer, torch, diffusers) takes seconds; a Ctrl-C or
SIGTERM in that time would end in Python's traceback or a silent kill. Here it is one sentence and exit 130 or 143,
as it is once a command runs (errors.handle).

The handler ends the process itself (os._exit) instead of raising: an exception raised while torch's import runs
Python code under one of its C++ (pybind11) frames cannot unwind through it, and the process aborted with
"terminate called after throwing an instance of 'pybind11::error_already_set'" (3 of 60 signals under load).
Nothing has been written while starting, so there is nothing to clean up."""
import os
import signal
import sys


def _stop(signum, frame):
    how, code = ("SIGTERM", 143) if signum == signal.SIGTERM else ("Ctrl-C", 130)
    sys.stderr.write(f"error: interrupted ({how}) while starting; nothing was done.\n")
    sys.stderr.flush()
    os._exit(code)


def run() -> None:
    ours = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is signal.default_int_handler else [])
    previous = {s: signal.signal(s, _stop) for s in ours}      # an ignored SIGINT (a background job) stays ignored
    try:
        from .main import main
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    main()
