"""`duge-lora eval`: how often the judge reads the model's generations as prompted."""
from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from duge_lora.adapter import read_adapter
from duge_lora.concepts import Request, make_request
from duge_lora.evaluate import evaluate
from duge_lora.compose import apply_to_base, parse_item
from duge_lora.models import load_base

from .common import AdaptersOpt, BaseOpt, DeviceOpt, JsonOpt, SeedOpt, emit_json, note, out, progress_bar

EXAMPLES = """

Examples:

  duge-lora eval --json

  duge-lora eval --adapters erase-circle erase-red --json          (targets read from the adapters)

  duge-lora eval --concept circle --json                           (the base's UA for circle: about 0)
"""


def eval_command(
    base: BaseOpt = "toy",
    adapters: AdaptersOpt = None,
    concept: Annotated[Optional[list[str]], typer.Option("--concept", help="Targets, in request order (default: the adapters' concepts).")] = None,
    n: Annotated[int, typer.Option("-n", "--num-images", min=1, help="Images per prompt.")] = 2,
    seed: SeedOpt = 0,
    json_: JsonOpt = False,
    device: DeviceOpt = "auto",
) -> None:
    """Generate images for all the toy world's prompts; report per-axis accuracy and UA, UA_prev, IRA, CRA.

    UA is 1 - the judge's accuracy on the target's prompts (synonyms included); UA_prev the same for the earlier
    targets; IRA the accuracy on the targets' own axis for other concepts; CRA on the other axes.
    """
    b = load_base(base, device)
    if concept:
        targets = [make_request(c, b.toy_world) for c in concept]
    else:
        records = [read_adapter(parse_item(a)[0]).record for a in adapters or []]
        targets = [Request.from_dict(r["request"]) for r in records if "request" in r]
    if adapters:
        apply_to_base(b, adapters)
    note(f"base: {b.name} ({b.source})" + (f", adapters: {', '.join(adapters)}" if adapters else "")
         + (f"; targets: {', '.join(t.concept for t in targets)}" if targets else ""))
    with progress_bar("generating", quiet=json_) as bar:
        report = evaluate(b, n=n, seed=seed, targets=targets, progress=lambda d, t: bar(d, t))
    result = report.to_dict() | {"adapters": adapters or []}
    if json_:
        emit_json(result)
        return
    table = Table(title=f"judge accuracy on {report.n_images} generations ({report.n_prompts} prompts x {n})")
    table.add_column("axis")
    table.add_column("accuracy", justify="right")
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    for axis, acc in report.accuracy.items():
        table.add_row(axis, pct(acc))
    if targets:
        for t in report.targets:
            table.add_row(f"UA {t['concept']}", pct(t["ua"]))
        for name in ("ua", "ua_prev", "ira", "cra"):
            table.add_row(name.upper(), pct(getattr(report, name)))
    out.print(table)
    note(f"{report.seconds} s")


eval_command.__doc__ += EXAMPLES
