"""`duge-lora attack`: can an erased concept be brought back? Textual inversion into the erased model."""
from __future__ import annotations

from typing import Annotated

import typer

from duge_lora.attack import AttackConfig, run_attack
from duge_lora.judges import load_judge

from .common import AdaptersOpt, BaseOpt, DeviceOpt, JsonOpt, JudgeOpt, KindOpt, SeedOpt, note, progress_bar
from .output import Output

A = AttackConfig
EXAMPLES = """

Examples:

  duge-lora attack --concept circle                                  (the ceiling: the plain base)

  duge-lora attack --adapters erase-circle --concept circle --json   (the erased model)

  duge-lora attack --base ./sd15 --adapters no-van-gogh --concept "Van Gogh" --judge openai/clip-vit-large-patch14
"""


def attack_command(
    concept: Annotated[str, typer.Option("--concept", help="The erased concept to bring back.", show_default=False)],
    adapters: AdaptersOpt = None,
    base: BaseOpt = "toy",
    steps: Annotated[int, typer.Option("--steps", help="Textual-inversion steps (the attack's budget).")] = A.steps,
    tokens: Annotated[int, typer.Option("--tokens", help="New token embeddings learned.")] = A.tokens,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate of the new embeddings.")] = A.lr,
    images: Annotated[int, typer.Option("-n", "--num-images", help="Evaluation images per prompt.")] = A.images,
    seed: SeedOpt = A.seed,
    ceiling: Annotated[bool, typer.Option("--ceiling/--no-ceiling", help="Also attack the base with the same budget.")] = True,
    judge: JudgeOpt = None,
    kind: KindOpt = None,
    json_: JsonOpt = False,
    device: DeviceOpt = "auto",
) -> None:
    """Learn new word embeddings for a concept on the erased model (base + adapters) from the base's images of it,
    then draw the concept's prompts with the learned word: the share read as the concept is `recovered`; the
    same attack on the base is the `ceiling` (Pham et al. 2023). On the toy model: every scene of the concept, read
    by its judge. On a real base: the concept's templates (those of the adapter that erased it, else its kind's),
    read by --judge (CLIP: among the concept, its anchor and its preserve set; a classifier: its top-1 class)."""
    cfg = AttackConfig(steps=steps, tokens=tokens, lr=lr, images=images, seed=seed)
    j = load_judge(judge, device) if judge is not None else None
    with progress_bar("attack", quiet=json_) as bar:
        r = run_attack(base, adapters or [], concept, cfg, device, ceiling, progress=lambda stage, d, t: bar(d, t, stage),
                       judge=j, kind=kind)
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    Output(json_).show(r.to_dict() | {"adapters": adapters or []},
                       f"{r.concept}: recovered {pct(r.recovered)} of {r.images} images by the attack (ceiling on the "
                       f"base {pct(r.ceiling)}; plain prompts {pct(r.plain)}), {r.steps} steps, {r.seconds} s")
    note(f"{r.seconds} s")


attack_command.__doc__ += EXAMPLES
