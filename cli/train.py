"""`duge-lora train`: one unlearning request -> one DUGE LoRA adapter, on top of the earlier ones."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duge_lora.adapter import LoraSpec, read_adapter
from duge_lora.concepts import make_request
from duge_lora.errors import DugeError
from duge_lora.io import check_output
from duge_lora.train import METHODS
from duge_lora.models import load_base
from duge_lora.stack import append_to_stack, slug, stack_members
from duge_lora.train import TrainConfig, partial_dir, train_adapter

from .common import BaseOpt, DeviceOpt, JsonOpt, OverwriteOpt, SeedOpt, emit_json, note, staged_progress

EXAMPLES = """

Examples:

  duge-lora train --concept circle -o erase-circle

  duge-lora train --concept "Mickey Mouse" --stack mystack        (trains on top of mystack, appends to it)

  duge-lora train --concept red --after erase-circle -o erase-red --steps 300

  duge-lora train --base ./my-sd15 --concept "Snoopy" --anchor "a dog" --preserve "a cat" --mixed-precision bf16 -o snoopy
"""


def parse_weights(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise DugeError(f"--weight {item!r} is not NAME=NUMBER.", "Write it like --weight drift=0.01.") from None
    return out


def train(
    concept: Annotated[str, typer.Option("--concept", help="The concept to erase, e.g. \"Mickey Mouse\".", show_default=False)],
    anchor: Annotated[Optional[str], typer.Option("--anchor", help="What to draw instead (toy default: the nearest neighbour; otherwise the empty prompt).")] = None,
    preserve: Annotated[Optional[list[str]], typer.Option("--preserve", help="Related concepts that must survive (toy default: the neighbours).")] = None,
    synonym: Annotated[Optional[list[str]], typer.Option("--synonym", help="Other words for the concept, erased too.")] = None,
    after: Annotated[Optional[list[str]], typer.Option("--after", help="Earlier adapters, in the order they were trained.")] = None,
    stack: Annotated[Optional[Path], typer.Option("--stack", help="A stack folder: train on all its adapters, then append this one.")] = None,
    base: BaseOpt = "toy",
    method: Annotated[str, typer.Option("--method", help=f"Objective: {', '.join(METHODS)} (uce: closed form, no training).")] = "duge",
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank.")] = 4,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="LoRA alpha (default: the rank, so scaling 1).")] = None,
    targets: Annotated[str, typer.Option("--targets", help="Cross-attention projections to adapt: k,v,q,out.")] = "k,v",
    steps: Annotated[int, typer.Option("--steps", min=1)] = TrainConfig.steps,
    lr: Annotated[float, typer.Option("--lr")] = TrainConfig.lr,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Rows per data set (anchor, preserve, replay) per step.")] = TrainConfig.batch,
    weight: Annotated[Optional[list[str]], typer.Option("--weight", help="Loss weight, NAME=VALUE (ca_attn, ca_eps, pp, pp_kv, drift, overlap, replay, keep; drift and overlap are 0 by default).")] = None,
    seed: SeedOpt = 0,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Adapter folder to write (default: erase-<concept>, or inside --stack).")] = None,
    mixed_precision: Annotated[str, typer.Option("--mixed-precision", help="no, bf16 or fp16 (fp16 needs a GPU).")] = "no",
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Trade compute for memory on big UNets.")] = False,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", help="Steps between checkpoints (0: none).")] = TrainConfig.checkpoint_every,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its checkpoint.")] = False,
    overwrite: OverwriteOpt = False,
    json_: JsonOpt = False,
    device: DeviceOpt = "auto",
) -> None:
    """Train one LoRA adapter that erases a concept, with the DUGE losses, on top of the earlier adapters."""
    if after and stack:
        raise DugeError("--after and --stack both name the earlier adapters.", "Use one of them.")
    if mixed_precision not in ("no", "bf16", "fp16"):
        raise DugeError(f"--mixed-precision {mixed_precision!r} is not one of no, bf16, fp16.", "Pick one of those.")
    parent_paths = [Path(p) for p in after or []]
    if stack:
        parent_paths = stack_members(stack)
    output = output or ((stack / slug(concept)) if stack else Path(f"erase-{slug(concept)}"))
    if stack:
        stack.mkdir(parents=True, exist_ok=True)
    check_output(output, overwrite)
    spec = LoraSpec(rank=rank, alpha=float(alpha if alpha is not None else rank),
                    targets=tuple(t.strip() for t in targets.split(",") if t.strip()))
    parents = [read_adapter(p) for p in parent_paths]
    b = load_base(base, device)
    req = make_request(concept, b.toy_world, anchor, preserve, synonym)
    cfg = TrainConfig(method=method, steps=steps, lr=lr, batch=batch, seed=seed, lora=spec,
                      weights=parse_weights(weight or []) or None, checkpoint_every=checkpoint_every,
                      mixed_precision=mixed_precision, gradient_checkpointing=gradient_checkpointing)
    _describe(b, req, parents)
    if resume and not (partial_dir(output) / "state.json").exists():
        note(f"no checkpoint in {partial_dir(output)}; starting from step 0")
    record = _run(b, req, parents, cfg, output, resume, quiet=json_)
    if stack:
        append_to_stack(stack, output)
    if json_:
        emit_json({"output": str(output)} | record)
    else:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in record["final_losses"].items())
        note(f"wrote {output} in {record['seconds']} s (final losses: {losses})")


def _describe(b, req, parents) -> None:
    tag = lambda f: " [dim](default)[/]" if f in req.defaults else ""  # noqa: E731
    note(f"base: {b.name} ({b.source})")
    note(f"erase: [bold]{req.concept}[/]" + (f" ({req.axis})" if req.axis else "")
         + f"; anchor: {req.anchor or '(empty prompt)'}{tag('anchor')}"
         + f"; preserve: {', '.join(req.preserve) or '-'}{tag('preserve')}"
         + f"; synonyms: {', '.join(req.synonyms) or '-'}{tag('synonyms')}")
    if parents:
        note("after: " + " -> ".join(f"{p.concept} ({p.path})" for p in parents))


def _run(b, req, parents, cfg, output, resume, quiet):
    with staged_progress(quiet) as progress:
        return train_adapter(b, req, parents, cfg, output, resume=resume, progress=progress)


train.__doc__ += EXAMPLES
