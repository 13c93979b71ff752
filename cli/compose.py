"""`duge-lora compose` and `duge-lora inspect`: adapters -> one cumulatively unlearned model, and what a file is."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duge_lora.compose import METHODS, check_options, compose_adapters, remove_adapter
from duge_lora.errors import DugeError
from duge_lora.formats import FORMATS, output_format
from duge_lora.io import check_output
from duge_lora.models import pick_device, resolve_precision
from duge_lora.records import describe

from .common import BaseOpt, DeviceOpt, JsonOpt, OverwriteOpt, PrecisionOpt, note, progress_bar
from .output import Output

EXAMPLES = """

Examples:

  duge-lora compose erase-circle erase-red erase-mickey -o model.safetensors

  duge-lora compose erase-circle:1 erase-red:0.5 --format pipeline -o unlearned-pipeline

  duge-lora compose erase-circle erase-red --method cat --format lora -o stack-lora.safetensors

  duge-lora compose erase-circle erase-red --format kohya -o erase-for-a1111.safetensors

  duge-lora compose model.safetensors --remove erase-red -o model-without-red.safetensors
"""


def compose_command(
    adapters: Annotated[list[str], typer.Argument(help="Adapter folders in request order, each optionally ADAPTER:WEIGHT; with --remove, one composed model.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.safetensors) or folder (pipeline format).", show_default=False)],
    base: BaseOpt = "toy",
    method: Annotated[str, typer.Option("--method", help=f"{' | '.join(METHODS)}: merge the exact sum, one LoRA of summed rank, or the sum truncated to --rank.")] = METHODS[0],
    rank: Annotated[Optional[int], typer.Option("--rank", help="Rank budget for --method svd.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help=f"{', '.join(FORMATS)}: a merged UNet state dict, a diffusers folder, one LoRA (diffusers/peft keys), one LoRA in the kohya layout that AUTOMATIC1111, ComfyUI and Forge read, or the merged model as one original-layout SD checkpoint (default: unet for *.safetensors, else pipeline).")] = None,
    remove: Annotated[Optional[str], typer.Option("--remove", help="Subtract this adapter from the composed model given as the argument.")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check the output against the live stack on probe inputs (and, on the toy base, with the judge).")] = True,
    overwrite: OverwriteOpt = False,
    json_: JsonOpt = False,
    device: DeviceOpt = "auto",
    mixed_precision: PrecisionOpt = "auto",
) -> None:
    """Merge or stack adapters into the cumulatively unlearned model (or remove one from it), and verify it."""
    dev = pick_device(device)
    resolve_precision(mixed_precision, dev)
    check_options(method, rank, fmt, output, remove)
    check_output(output, overwrite, folder=output_format(output, fmt) == "pipeline")
    if remove:
        if len(adapters) != 1:
            raise DugeError("--remove takes exactly one composed model as the argument.", "Write: compose MODEL --remove ADAPTER -o OUT.", option="remove")
        result = remove_adapter(adapters[0], remove, output, base, dev)
    else:
        with progress_bar("judging", quiet=json_ or not verify) as bar:
            result = compose_adapters(adapters, output, base, method, fmt, rank, dev, verify, progress=lambda d, t: bar(d, t),
                                      mixed_precision=mixed_precision)
        for w in result.warnings:
            note(f"[yellow]warning:[/] {w}")
    Output(json_).show(result.to_dict(), _summary(result))


def _summary(result) -> str:
    v = result.verification
    extra = f", max |composed - stack| = {v.max_abs_diff:.2e}" if v is not None else ""
    lines = [f"wrote {result.output} ({result.format}, {result.method}, {len(result.adapters)} adapters, {result.seconds} s{extra})"]
    if v is not None and v.judge:
        lines.append(f"  mean UA over {len(v.judge['targets'])} targets: {100 * (v.judge['mean_ua'] or 0):.1f}%")
        lines += [f"  erased {t['concept']}: UA {100 * t['ua']:.1f}%" for t in v.judge["targets"]]
        lines.append(f"  kept: IRA {100 * (v.judge['ira'] or 0):.1f}%, CRA {100 * (v.judge['cra'] or 0):.1f}%")
    return "\n".join(lines)


compose_command.__doc__ += EXAMPLES


def inspect_command(path: Annotated[Path, typer.Argument(help="An adapter folder/file, or a composed model.")], json_: JsonOpt = False) -> None:
    """Say what an adapter or composed model is: concepts, lineage, base, ranks, targets, sizes."""
    Output(json_).show(describe(path))
