"""`duge-lora sample`: a grid of generations, rows = prompts."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from duge_lora.compose import apply_to_base
from duge_lora.errors import DugeError
from duge_lora.generate import generate, grid, side_by_side
from duge_lora.io import atomic_path, check_output
from duge_lora.models import load_base
from duge_lora.validate import number

from .common import (AdaptersOpt, BaseOpt, DeviceOpt, GenBatchOpt, JsonOpt, OutputOpt, OverwriteOpt, PrecisionOpt, SeedOpt,
                     note, progress_bar)
from .output import Output

EXAMPLES = """

Examples:

  duge-lora sample "a red circle" "a striped star" -n 4 --seed 0 -o grid.png

  duge-lora sample "a blue mickey" -o erased.png --adapters path/to/adapter --overwrite

  duge-lora sample "a red circle" "a blue oval" --adapters erase-circle --compare -o before-after.png

  duge-lora sample --adapters erase-circle erase-red "a red circle" -o x.png

--adapters takes several adapters; the list ends at the next option or at the first word that is not an
adapter (an existing folder or file, optionally PATH:WEIGHT), so prompts may follow it.
"""


def sample(
    prompts: Annotated[list[str], typer.Argument(help="Prompts, one grid row each.", show_default=False)],
    n: Annotated[int, typer.Option("-n", "--num-images", min=1, help="Images per prompt (grid columns).")] = 4,
    seed: SeedOpt = 0,
    output: OutputOpt = Path("grid.png"),
    base: BaseOpt = "toy",
    adapters: AdaptersOpt = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Denoising steps (default: the base's).")] = None,
    guidance: Annotated[Optional[float], typer.Option("--guidance", help="Classifier-free guidance scale (default: the base's).")] = None,
    compare: Annotated[bool, typer.Option("--compare", help="Put the base's images (same seeds) left of the adapted ones.")] = False,
    overwrite: OverwriteOpt = False,
    json_: JsonOpt = False,
    device: DeviceOpt = "auto",
    mixed_precision: PrecisionOpt = "auto",
    gen_batch: GenBatchOpt = None,
) -> None:
    """Generate images for prompts and write them as one PNG grid (rows = prompts)."""
    t0 = time.time()
    if output.suffix.lower() != ".png":
        output = output.with_suffix(output.suffix + ".png") if output.suffix else output.with_suffix(".png")
    output = check_output(output, overwrite, folder=False)
    if compare and not adapters:
        raise DugeError("--compare shows the base beside the base with adapters, but no --adapters were given.",
                        "Add --adapters A1 [A2 ...], or drop --compare.", option="compare")
    if guidance is not None:
        number("guidance", guidance, low=0, example="7.5")
    b = load_base(base, device, mixed_precision=mixed_precision, gen_batch=gen_batch)
    b.world.check_prompts(prompts)
    run = lambda bar: generate(b, prompts, n, seed, guidance_scale=guidance, num_inference_steps=steps,  # noqa: E731
                               progress=lambda d, t: bar(d, t))
    before = None
    if compare:
        with progress_bar("base", quiet=json_) as bar:
            before = run(bar)
    if adapters:
        apply_to_base(b, adapters)
    note(f"base: {b.name} ({b.source})" + (f", adapters: {', '.join(adapters)}" if adapters else ""))
    with progress_bar("sampling", quiet=json_) as bar:
        images = run(bar)
    picture = grid(images, prompts)
    if before is not None:
        picture = side_by_side(grid(before, prompts), picture, ("base", "base + " + ", ".join(Path(a).name for a in adapters)))
    with atomic_path(output) as tmp:
        picture.save(tmp, format="PNG")
    result = {"output": str(output), "base": b.name, "adapters": adapters or [], "prompts": prompts, "n": n,
              "seed": seed, "seconds": round(time.time() - t0, 2)}
    Output(json_).show(result, f"wrote {output} ({len(prompts)} prompts x {n} images, {result['seconds']} s)")


sample.__doc__ += EXAMPLES
