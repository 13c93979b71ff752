"""`duge-lora toy ...`: the embedded toy world and model (build, path, vocab)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from duge_lora import toy as toy_pkg
from duge_lora.io import check_output
from duge_lora.toy import world
from duge_lora.toy.build import BuildConfig

from .common import JsonOpt, OverwriteOpt, out, staged_progress
from .output import Output

app = typer.Typer(help="The embedded toy world and model: rebuild it, find it, list its words.", no_args_is_help=True)


@app.command("path")
def path() -> None:
    """Print the folder of the shipped diffusers pipeline, for plain diffusers code.

    Example: python -c "from diffusers import StableDiffusionPipeline as P; P.from_pretrained('$(duge-lora toy path)')"
    """
    print(toy_pkg.PIPELINE_DIR)


@app.command("vocab")
def vocab(json_: JsonOpt = False) -> None:
    """List the words the toy model knows, by axis (prompts may use only these)."""
    groups = {
        "object": list(world.OBJECTS), "character": list(world.CHARACTERS), "color": list(world.COLORS),
        "style": list(world.STYLES), "synonyms": {k: list(v) for k, v in world.SYNONYMS.items()},
        "other": [w for w in world.vocabulary() if world.canonical(w) not in world.NEIGHBOURS],
    }
    if json_:
        Output(True).show(groups)
        return
    for name, words in groups.items():
        shown = ", ".join(f"{k} ({'/'.join(v)})" for k, v in words.items()) if isinstance(words, dict) else ", ".join(words)
        out.print(f"[bold]{name}[/]: {shown}", highlight=False)


@app.command("build")
def build(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the new model (pipeline/, judge/, build.json).")] = Path("toy-build"),
    work: Annotated[Path, typer.Option("--work", help="Cache of finished stages; a rerun resumes from it.")] = Path.home() / ".cache" / "duge-lora" / "toy-build",
    seed: Annotated[int, typer.Option("--seed")] = BuildConfig.seed,
    n_train: Annotated[int, typer.Option("--n-train", help="Training renders.")] = BuildConfig.n_train,
    n_heldout: Annotated[int, typer.Option("--n-heldout", min=1, help="Held-out renders the judge and the VAE are measured on.")] = BuildConfig.n_heldout,
    judge_steps: Annotated[int, typer.Option("--judge-steps")] = BuildConfig.judge_steps,
    vae_steps: Annotated[int, typer.Option("--vae-steps")] = BuildConfig.vae_steps,
    unet_steps: Annotated[int, typer.Option("--unet-steps")] = BuildConfig.unet_steps,
    overwrite: OverwriteOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Retrain the toy model and its judge from scratch (about 45 minutes on 2 CPU cores).

    To replace the shipped model: duge-lora toy build -o "$(dirname "$(duge-lora toy path)")" --overwrite
    """
    from duge_lora.toy.build import build as run_build

    check_output(output, overwrite)
    cfg = BuildConfig(seed=seed, n_train=n_train, n_heldout=n_heldout, judge_steps=judge_steps, vae_steps=vae_steps, unet_steps=unet_steps)
    with staged_progress() as progress:
        report = run_build(output, work, cfg, progress)
    summary = json.dumps({k: report[k] for k in ("judge_heldout_accuracy", "vae_psnr", "seconds")}, indent=1)
    Output(json_).show(report, f"{summary}\nwrote {output}")
