"""`duge-lora eval`: how often the judge reads the model's generations as prompted."""
from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from duge_lora.compose import apply_items, load_items
from duge_lora.errors import UsageError, param
from duge_lora.judges import load_judge
from duge_lora.models import load_base
from duge_lora.records import requests_of
from duge_lora.worlds import IMAGES_PER_PROMPT

from .common import (AdaptersOpt, BaseOpt, DeviceOpt, GenBatchOpt, JsonOpt, JudgeOpt, KindOpt, PrecisionOpt, SeedOpt, note,
                     progress_bar)
from .output import Output

EXAMPLES = """

Examples:

  duge-lora eval --json

  duge-lora eval --adapters erase-circle erase-red --json          (targets read from the adapters)

  duge-lora eval --concept circle --json                           (the base's UA for circle: about 0)

  duge-lora eval --base ./sd21 --adapters no-van-gogh --judge openai/clip-vit-large-patch14
"""


def eval_command(
    base: BaseOpt = "toy",
    adapters: AdaptersOpt = None,
    concept: Annotated[Optional[list[str]], typer.Option("--concept", help="Targets, in request order (default: the adapters' concepts); the list ends at the next option.")] = None,
    n: Annotated[int, typer.Option("-n", "--num-images", min=1, help="Images per prompt.")] = IMAGES_PER_PROMPT,
    seed: SeedOpt = 0,
    judge: JudgeOpt = None,
    kind: KindOpt = None,
    json_: JsonOpt = False,
    device: DeviceOpt = "auto",
    mixed_precision: PrecisionOpt = "auto",
    gen_batch: GenBatchOpt = None,
) -> None:
    """Generate images for the world's prompts; report accuracy and mean UA, UA, UA_prev, IRA, CRA.

    On the toy model: every prompt of its world, read by its judge. On a real base: each target's prompts (its
    kind's templates), its related concepts and everyday subjects, read by --judge (CLIP zero-shot or an image
    classifier; docs/real-bases.md).

    UA is 1 - the judge's accuracy on a target's prompts (synonyms included). The headline is the mean UA over
    every target of the stack; every target's UA is listed, then the last target's UA, UA_prev (the earlier
    targets' mean), IRA (the targets' own axis for other concepts) and CRA (the other axes).
    """
    if judge is not None and base == "toy":
        raise UsageError(f"{param('judge')} is for real bases; the toy model is measured by its own judge.",
                         f"Leave {param('judge')} out with the toy model.", option="judge")
    j = load_judge(judge, device) if judge is not None else None
    b = load_base(base, device, mixed_precision=mixed_precision, gen_batch=gen_batch)
    items = load_items(adapters or [])
    targets = [b.world.make_request(c, kind=kind) for c in concept] if concept else requests_of([i.adapter for i in items])
    apply_items(b, items)
    note(f"base: {b.name} ({b.source})" + (f", adapters: {', '.join(adapters)}" if adapters else "")
         + (f"; targets: {', '.join(t.concept for t in targets)}" if targets else ""))
    with progress_bar("generating", quiet=json_) as bar:
        extra = {"judge": j} if j is not None else {}
        report = b.world.evaluate(b, n=n, seed=seed, targets=targets, progress=lambda d, t: bar(d, t), **extra)
    Output(json_).show(report.to_dict() | {"adapters": adapters or []}, _table(report, n, bool(targets)))
    note(f"{report.seconds} s")


def _table(report, n: int, with_targets: bool) -> Table:
    table = Table(title=f"judge accuracy on {report.n_images} generations ({report.n_prompts} prompts x {n})")
    table.add_column("axis" if report.judge is None else "prompts")
    table.add_column("accuracy", justify="right")
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    for axis, acc in report.accuracy.items():
        table.add_row(axis, pct(acc))
    if with_targets:
        table.add_row("[bold]mean UA, all targets[/]", f"[bold]{pct(report.mean_ua)}[/]")
        for t in report.targets:
            table.add_row(f"UA {t['concept']}", pct(t["ua"]))
        labels = {"ua": f"UA of the last target ({report.targets[-1]['concept']})", "ua_prev": "UA_prev (earlier targets)",
                  "ira": "IRA", "cra": "CRA"}
        for name, label in labels.items():
            table.add_row(label, pct(getattr(report, name)))
    return table


eval_command.__doc__ += EXAMPLES
