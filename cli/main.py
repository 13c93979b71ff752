"""The `duge-lora` entry point: the typer app, and the one place expected errors become one sentence."""
from __future__ import annotations

import os
import sys

import click
import typer

from duge_lora import __version__
from duge_lora.errors import DugeError

from . import toy
from .bench import bench_command
from .common import err
from .compose import compose_command, inspect_command
from .evaluate import eval_command
from .sample import sample
from .train import train

app = typer.Typer(name="duge-lora", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Continual concept unlearning for text-to-image models: one DUGE LoRA adapter per request.")
app.command("sample")(sample)
app.command("eval")(eval_command)
app.command("train")(train)
app.command("compose")(compose_command)
app.command("inspect")(inspect_command)
app.command("bench")(bench_command)
app.add_typer(toy.app, name="toy")

# options that take several values after one flag (`--adapters a1 a2 a3`), as the docs show them
VARIADIC = ("--adapters", "--after", "--preserve", "--synonym", "--concept")


def expand_variadic(argv: list[str]) -> list[str]:
    """Rewrite `--adapters a b c` as `--adapters a --adapters b --adapters c` (click wants one value per flag)."""
    out, flag = [], None
    for arg in argv:
        if arg in VARIADIC:
            flag = arg
            continue
        if flag and not arg.startswith("-"):
            out += [flag, arg]
            continue
        flag = None
        out.append(arg)
    return out


def _quiet_libraries() -> None:
    """Silence what diffusers/transformers print for library authors (loading bars, 'no LoRA keys for the text
    encoder', 'torchvision not installed'); our own progress bars say what matters. Environment variables only
    (read when those libraries are first imported), so a command that never loads a model starts fast."""
    for var, value in (("DIFFUSERS_VERBOSITY", "error"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(var, value)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; expected failures print one sentence to stderr and exit 1 (traceback with DUGE_LORA_DEBUG=1)."""
    args = expand_variadic(list(sys.argv[1:] if argv is None else argv))
    if args in (["--version"], ["-V"]):
        print(f"duge-lora {__version__}")
        return 0
    _quiet_libraries()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="duge-lora", standalone_mode=False)
    except DugeError as exc:
        if os.environ.get("DUGE_LORA_DEBUG"):
            raise
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        code = getattr(exc, "exit_code", 1)
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        err.print("[bold red]interrupted[/]: nothing was written.")
        code = 130
    code = code if isinstance(code, int) else 0
    if argv is None:
        sys.exit(code)
    return code
