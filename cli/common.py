"""What every command shares: the consoles, option types and progress bars."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

ARGV: list[str] = []                             # this command line's arguments (main.py sets them)
out = Console(soft_wrap=True)                    # results (stdout)
err = Console(stderr=True, soft_wrap=True)         # progress, notes and errors (stderr)

BaseOpt = Annotated[str, typer.Option("--base", help="Base model: 'toy' (the embedded default), a local diffusers folder, or a Hub id.")]
AdaptersOpt = Annotated[Optional[list[str]], typer.Option("--adapters", help="Adapters to apply to the base, in order, each optionally ADAPTER:WEIGHT (merged in memory, as `compose` does); the list ends at the next option.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same images.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="'auto' (GPU when there is one), 'cpu' or 'cuda'.")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Where to write the result.")]
PrecisionOpt = Annotated[str, typer.Option("--mixed-precision", help="The base's precision: auto (fp16 on a GPU, fp32 on a CPU), no (fp32), fp16 (GPU only) or bf16; trained LoRA parameters are always fp32.")]
GenBatchOpt = Annotated[Optional[int], typer.Option("--gen-batch", min=1, help="Images per pipeline call (default: as many as fit in half the free memory, at most 64).")]
JudgeOpt = Annotated[Optional[str], typer.Option("--judge", help="On a real base: a CLIP model (e.g. openai/clip-vit-large-patch14) or an image classifier (e.g. microsoft/resnet-50), a folder or a Hub id.")]
KindOpt = Annotated[Optional[str], typer.Option("--kind", help="On a real base: object, style, character, likeness or nsfw (default: guessed from a built-in list, else object).")]
PromptsOpt = Annotated[Optional[Path], typer.Option("--prompts", help="On a real base: a text file of prompt templates, one per line, {} where the concept goes (default: the kind's).")]


@contextmanager
def progress_bar(description: str, quiet: bool = False) -> Iterator:
    """A rich progress bar on stderr; yields callback(done, total, **fields)."""
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    bar = Progress(*columns, console=err, transient=False, disable=quiet)
    task = None

    def update(done: int, total: int, info: str = "") -> None:
        nonlocal task
        if task is None:                 # shown from the first update on, so an early error prints alone
            bar.start()
            task = bar.add_task(description, total=None, info="")
        bar.update(task, completed=done, total=total, info=info)
    try:
        yield update
    finally:
        bar.stop()


@contextmanager
def staged_progress(quiet: bool = False) -> Iterator:
    """One rich bar per stage on stderr; yields the library's callback progress(stage, step, total, info)."""
    columns = [TextColumn("[bold]{task.description:13}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    bar = Progress(*columns, console=err, disable=quiet)
    tasks: dict[str, int] = {}

    def progress(stage: str, step: int, total: int, info: dict) -> None:
        if not tasks:                    # shown from the first update on, so an early error prints alone
            bar.start()
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total, info="")
        bar.update(tasks[stage], completed=step, total=total,
                   info="  ".join(f"{k} {v:.3g}" for k, v in info.items()))
    try:
        yield progress
    finally:
        bar.stop()


def note(message: str) -> None:
    err.print(message, highlight=False)
