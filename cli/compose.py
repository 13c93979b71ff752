"""`duge-lora compose` and `duge-lora inspect`: adapters -> one cumulatively unlearned model, and what a file is."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from duge_lora.adapter import read_adapter
from duge_lora.compose import FORMATS, METHODS, compose_adapters, read_model, remove_adapter
from duge_lora.errors import DugeError
from duge_lora.io import check_output
from duge_lora.models import pick_device

from .common import BaseOpt, DeviceOpt, JsonOpt, OverwriteOpt, emit_json, note, out, progress_bar

EXAMPLES = """

Examples:

  duge-lora compose erase-circle erase-red erase-mickey -o model.safetensors

  duge-lora compose erase-circle:1 erase-red:0.5 --format pipeline -o unlearned-pipeline

  duge-lora compose erase-circle erase-red --method cat --format lora -o stack-lora.safetensors

  duge-lora compose model.safetensors --remove erase-red -o model-without-red.safetensors
"""


def _format_for(output: Path, fmt: Optional[str]) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise DugeError(f"Unknown --format {fmt!r}.", f"Choose one of {', '.join(FORMATS)}.")
        return fmt
    return "unet" if output.suffix == ".safetensors" else "pipeline"


def compose_command(
    adapters: Annotated[list[str], typer.Argument(help="Adapter folders in request order, each optionally ADAPTER:WEIGHT; with --remove, one composed model.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.safetensors) or folder (pipeline format).", show_default=False)],
    base: BaseOpt = "toy",
    method: Annotated[str, typer.Option("--method", help=f"{' | '.join(METHODS)}: merge the exact sum, one LoRA of summed rank, or the sum truncated to --rank.")] = "sum",
    rank: Annotated[Optional[int], typer.Option("--rank", help="Rank budget for --method svd.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="unet (merged UNet state dict), pipeline (diffusers folder) or lora (default: unet for *.safetensors, else pipeline).")] = None,
    remove: Annotated[Optional[str], typer.Option("--remove", help="Subtract this adapter from the composed model given as the argument.")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check the output against the live stack on probe inputs (and, on the toy base, with the judge).")] = True,
    overwrite: OverwriteOpt = False,
    json_: JsonOpt = False,
    device: DeviceOpt = "auto",
) -> None:
    """Merge or stack adapters into the cumulatively unlearned model (or remove one from it), and verify it."""
    dev = pick_device(device)
    check_output(output, overwrite)
    if remove:
        if len(adapters) != 1:
            raise DugeError("--remove takes exactly one composed model as the argument.", "Write: compose MODEL --remove ADAPTER -o OUT.")
        result = remove_adapter(adapters[0], remove, output, base, dev)
    else:
        with progress_bar("judging", quiet=json_ or not verify) as bar:
            result = compose_adapters(adapters, output, base, method, _format_for(output, fmt), rank, dev, verify,
                                      progress=lambda d, t: bar(d, t))
        for w in result["warnings"]:
            note(f"[yellow]warning:[/] {w}")
    if json_:
        emit_json(result)
        return
    extra = f", max |composed - stack| = {result['max_abs_diff']:.2e}" if "max_abs_diff" in result else ""
    note(f"wrote {output} ({result['format']}, {result['method']}, {len(result['adapters'])} adapters, {result['seconds']} s{extra})")
    if "judge" in result:
        j = result["judge"]
        for t in j["targets"]:
            note(f"  erased {t['concept']}: UA {100 * t['ua']:.1f}%")
        note(f"  kept: IRA {100 * (j['ira'] or 0):.1f}%, CRA {100 * (j['cra'] or 0):.1f}%")


compose_command.__doc__ += EXAMPLES


def inspect_command(path: Annotated[Path, typer.Argument(help="An adapter folder/file, or a composed model.")], json_: JsonOpt = False) -> None:
    """Say what an adapter or composed model is: concepts, lineage, base, ranks, targets, sizes."""
    if not path.exists():
        raise DugeError(f"{path} does not exist.", "Check the path.")
    try:
        a = read_adapter(path)
        info = {"kind": "adapter", "path": str(path), "concept": a.concept, "request": a.record.get("request"),
                "method": a.record.get("method"), "base": a.record.get("base"), "parents": a.record.get("parents", []),
                "rank": a.spec.rank, "alpha": a.spec.alpha, "targets": list(a.spec.targets), "modules": len(a.weights),
                "parameters": sum(x.numel() + y.numel() for x, y in a.weights.values()), "sha256": a.sha256}
    except DugeError:
        _, man, fmt = read_model(path)
        info = {"kind": "composed model", "path": str(path), "stored_as": fmt} | man
    if json_:
        emit_json(info)
        return
    for k, v in info.items():
        out.print(f"[bold]{k}[/]: {json.dumps(v) if isinstance(v, (dict, list)) else v}", highlight=False)
