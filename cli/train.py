"""`duge-lora train`: one unlearning request -> one DUGE LoRA adapter, on top of the earlier ones."""
from __future__ import annotations

import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer

from duge_lora.adapter import LoraSpec
from duge_lora.adversarial import OWN_SHARE as ROBUST_OWN_SHARE, ROUNDS as ROBUST_ROUNDS, TARGETS as ROBUST_TARGETS
from duge_lora.adversarial import robust_preset
from duge_lora.checkpoint import checkpoint_step, has_checkpoint, partial_dir
from duge_lora.errors import DugeError
from duge_lora.judges import load_judge
from duge_lora.io import check_output, check_paths
from duge_lora.losses import DEFAULT_WEIGHTS
from duge_lora.models import load_base, pick_device, resolve_precision
from duge_lora.worlds.generic import read_prompts
from duge_lora.records import requests_of, resolve_adapters
from duge_lora.stack import plan_request
from duge_lora.distributed import RankFailed, check_processes, current_ranks, launch
from duge_lora.train import CLOSED_FORM, METHODS, TrainConfig, train_adapter

from . import common
from .common import (BaseOpt, DeviceOpt, GenBatchOpt, JsonOpt, KindOpt, OverwriteOpt, PrecisionOpt, PromptsOpt, SeedOpt,
                     note, staged_progress)
from .errors import as_flags
from .output import Output

EXAMPLES = """

Examples:

  duge-lora train --concept circle -o erase-circle

  duge-lora train --concept "Mickey Mouse" --stack mystack        (trains on top of mystack, appends to it)

  duge-lora train --concept red --after erase-circle -o erase-red --steps 300

  duge-lora train --base ./my-sd15 --concept "Snoopy" --anchor "a dog" --preserve "a cat" --mixed-precision bf16 -o snoopy

  duge-lora train --base stabilityai/stable-diffusion-2-1-base --concept "Van Gogh" --kind style -o no-van-gogh

A multi-word concept is one quoted value. --after, --preserve and --synonym take several values; each list
ends at the next option.
"""
T, L = TrainConfig, LoraSpec
ANCHOR_WARNING = 0.25           # share of anchor images read as the target above which train warns


def parse_weights(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise DugeError(f"--weight {item!r} is not NAME=NUMBER.", "Write it like --weight drift=0.01.", option="weight") from None
    return out


def train(
    concept: Annotated[str, typer.Option("--concept", help="The concept to erase, e.g. \"Mickey Mouse\" (quoted: one value).", show_default=False)],
    anchor: Annotated[Optional[str], typer.Option("--anchor", help="What to draw instead (toy default: the nearest neighbour; otherwise the empty prompt).")] = None,
    preserve: Annotated[Optional[list[str]], typer.Option("--preserve", help="Related concepts that must survive (toy default: the neighbours).")] = None,
    synonym: Annotated[Optional[list[str]], typer.Option("--synonym", help="Other words for the concept, erased too.")] = None,
    after: Annotated[Optional[list[str]], typer.Option("--after", help="Earlier adapters, in the order they were trained.")] = None,
    stack: Annotated[Optional[Path], typer.Option("--stack", help="A stack folder: train on all its adapters, then append this one.")] = None,
    base: BaseOpt = "toy",
    method: Annotated[str, typer.Option("--method", help=f"Objective: {', '.join(METHODS)} (uce: closed form, no training).")] = T.method,
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank.")] = L.rank,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="LoRA alpha (default: the rank, so scaling 1).")] = L.alpha,
    targets: Annotated[Optional[str], typer.Option("--targets", help=f"Maps to adapt: the cross-attention projections k,v,q,out; ff, the feed-forward output of the same transformer blocks; ff-low, the same only in the blocks below the latent's full resolution (default: {','.join(L.targets)}; --robust: {','.join(ROBUST_TARGETS)}).", show_default=False)] = None,
    steps: Annotated[int, typer.Option("--steps", min=1)] = T.steps,
    lr: Annotated[float, typer.Option("--lr")] = T.lr,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Rows per data set (anchor, preserve, replay) per step.")] = T.batch,
    max_prompts: Annotated[int, typer.Option("--max-prompts", help="Prompts per data set (anchor, preserve, replay) whose images the model before this request draws: fewer is faster and preserves less.")] = T.max_prompts,
    weight: Annotated[Optional[list[str]], typer.Option("--weight", help=f"Loss weight, NAME=VALUE ({', '.join(DEFAULT_WEIGHTS)}; {', '.join(k for k, v in DEFAULT_WEIGHTS.items() if not v)} are 0 by default; also esd, esd_eta, pp_dreambooth=1, uce_lambda).")] = None,
    seed: SeedOpt = T.seed,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Adapter folder to write (default: erase-<concept>, or inside --stack).")] = None,
    kind: KindOpt = None,
    prompts: PromptsOpt = None,
    judge: Annotated[Optional[str], typer.Option("--judge", help="On a real base: a CLIP model or image classifier that checks the anchor images do not show the concept (warns if they do).")] = None,
    mixed_precision: PrecisionOpt = "auto",
    gen_batch: GenBatchOpt = None,
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Trade compute for memory on big UNets.")] = T.gradient_checkpointing,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", help="Steps between checkpoints (0: none).")] = T.checkpoint_every,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its checkpoint (rerunning the same command does too; --overwrite starts over).")] = False,
    init: Annotated[Optional[str], typer.Option("--init", help="Where the adapter starts: zero (exactly the model before this request) or uce (the closed-form UCE edit, then trained; DUGE's default).")] = None,
    robust: Annotated[bool, typer.Option("--robust", help=f"Resist a concept-recovery attack: {ROBUST_ROUNDS} adversarial rounds of textual inversion during training, to_out and the feed-forward output below full resolution adapted too, preservation weighed 5x, keep_attn 15, --repair on, the replay set's clean prompts kept and {round(100 * ROBUST_OWN_SHARE)}% of the anchor rows from the request's own pairs (slower; measured on the toy model only; docs/method.md).")] = False,
    repair: Annotated[Optional[bool], typer.Option("--repair/--no-repair", help="Hold the preserve and replay prompts that name no erased concept where the base draws them, not where the model before this request does: undoes what earlier requests wore away (L_pp and replay toward theta_0; default: on with --robust, off without; measured on the toy model only: less erosion; docs/method.md).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Use an --anchor that an earlier adapter erased (its prompt no longer draws it).")] = False,
    num_processes: Annotated[int, typer.Option("--num-processes", help="Data-parallel processes (accelerate; gloo on a CPU, NCCL on GPUs): each computes its share of every step's batch.")] = 1,
    overwrite: OverwriteOpt = False,
    json_: JsonOpt = False,
    device: DeviceOpt = "auto",
) -> int:
    """Train one LoRA adapter that erases a concept, with the DUGE losses, on top of the earlier adapters."""
    mixed_precision = resolve_precision(mixed_precision, pick_device(device))
    templates = read_prompts(prompts) if prompts is not None else None
    cfg = _config(method, steps, lr, batch, seed, rank, alpha, targets, weight, checkpoint_every, mixed_precision,
                  gradient_checkpointing, init, robust, max_prompts, repair)
    if robust and num_processes != 1:
        raise DugeError("--robust runs its adversarial rounds in one process.", "Leave --num-processes out with --robust.",
                        option="num_processes")
    dev = pick_device(device)
    plan = plan_request(concept, after, stack, output)
    ranks = current_ranks(dev)
    if ranks.is_main:
        check_output(plan.output if plan.stack is None or plan.stack.is_dir() else plan.stack, overwrite, folder=True)
    check_paths(plan.output, plan.parents)
    parents = resolve_adapters(plan.parents)
    if num_processes != 1 and ranks.world == 1:
        if method in CLOSED_FORM:
            note(f"--num-processes: {method} computes its adapter in closed form, without training steps to share, "
                 "so it runs in this one process")
        else:
            check_processes(num_processes, batch, dev)
            return _launch(plan.output, num_processes, resume, overwrite)
    if ranks.world > 1 and dev.type == "cuda":
        device = f"cuda:{ranks.accelerator.local_process_index}"
    if judge is not None and base == "toy":
        raise DugeError("--judge is for real bases; the toy model's anchors are checked by its own judge.",
                        "Leave --judge out with the toy model.", option="judge")
    j = load_judge(judge, device) if judge is not None else None
    b = load_base(base, device, mixed_precision=mixed_precision, gen_batch=gen_batch)
    if j is not None:
        b.world.judge = j
    req = b.world.make_request(concept, anchor, preserve, synonym, earlier=requests_of(parents), force=force,
                               kind=kind, templates=templates)
    _describe(b, req, parents)
    resume = _resume(plan.output, resume, overwrite) if ranks.is_main else has_checkpoint(partial_dir(plan.output))
    ranks.wait()                                              # every rank decides on the same checkpoint
    with (plan.writing() if ranks.is_main else nullcontext()), staged_progress(json_) as progress:
        record = train_adapter(b, req, parents, cfg, plan.output, resume=resume, progress=progress, ranks=ranks)
        if ranks.is_main:
            plan.finish()
    if not ranks.is_main:
        return 0
    seen = record.data.get("anchor_read_as_target")
    if seen is not None and seen > ANCHOR_WARNING:
        note(f"[yellow]warning:[/] the judge read {100 * seen:.0f}% of the anchor images ({req.anchor!r}, drawn by the "
             f"model before this request) as {req.concept!r}, so this request may erase little; try another --anchor.")
    losses = ", ".join(f"{k} {v:.4g}" for k, v in record.final_losses.items())
    Output(json_).show({"output": str(plan.output)} | record.to_dict(),
                       f"wrote {plan.output} in {record.seconds} s (final losses: {losses})")
    return 0


def _config(method, steps, lr, batch, seed, rank, alpha, targets, weight, checkpoint_every, mixed_precision,
            gradient_checkpointing, init, robust, max_prompts, repair=None) -> TrainConfig:
    """The TrainConfig of the command line; --robust applies adversarial.robust_preset (what was given wins)."""
    given = parse_weights(weight or []) or None
    lora = LoraSpec(rank=rank, alpha=alpha, targets=tuple(t.strip() for t in targets.split(",") if t.strip())
                    if targets is not None else LoraSpec.targets)
    cfg = TrainConfig(method=method, steps=steps, lr=lr, batch=batch, seed=seed, lora=lora, weights=given,
                      checkpoint_every=checkpoint_every, mixed_precision=mixed_precision,
                      gradient_checkpointing=gradient_checkpointing, init=init, max_prompts=max_prompts, repair=bool(repair))
    return robust_preset(cfg, targets is not None, given, repair is not None) if robust else cfg


def _launch(output, n: int, resume: bool, overwrite: bool) -> int:
    """Run this command as n data-parallel ranks; a rank that dies is reported with the checkpoint kept."""
    _resume(output, resume, overwrite)               # --overwrite discards a checkpoint once, before the ranks start
    try:
        return launch(_without_num_processes(common.ARGV), n)
    except RankFailed as exc:
        raise RankFailed(exc.rank, exc.world, exc.process_code, _kept(output)) from None


def _without_num_processes(argv: list[str]) -> list[str]:
    """The command line for the ranks: this one without --num-processes (each rank is one process)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--num-processes":
            skip = True
        elif not a.startswith("--num-processes="):
            out.append(a)
    return out


def _kept(output) -> str:
    """What a rerun after a failed data-parallel run starts from: the checkpoint's step, or step 0."""
    step = checkpoint_step(partial_dir(output))
    if step is None:
        return "No checkpoint was reached; rerun the same command to start again."
    return f"The checkpoint of step {step} in {partial_dir(output)} is kept: rerun the same command to resume from it."


def _resume(output, resume: bool, overwrite: bool) -> bool:
    """Continue from a checkpoint when there is one: asked with --resume, or by rerunning the same command;
    --overwrite starts over instead (the checkpoint is discarded)."""
    ckpt = partial_dir(output)
    if not has_checkpoint(ckpt):
        if resume:
            note(f"no checkpoint in {ckpt}; starting from step 0")
        return False
    if overwrite and not resume:
        note(f"--overwrite: discarding the checkpoint in {ckpt} and starting over")
        shutil.rmtree(ckpt)
        return False
    note(f"resuming from the checkpoint in {ckpt} (pass --overwrite instead to start over)")
    return True


def _describe(b, req, parents) -> None:
    tag = lambda f: " [dim](default)[/]" if f in req.defaults else ""  # noqa: E731
    note(f"base: {b.name} ({b.source})")
    note(f"erase: [bold]{req.concept}[/]" + (f" ({req.axis})" if req.axis else "")
         + f"; anchor: {req.anchor or '(empty prompt)'}{tag('anchor')}"
         + f"; preserve: {', '.join(req.preserve) or '-'}{tag('preserve')}"
         + f"; synonyms: {', '.join(req.synonyms) or '-'}{tag('synonyms')}")
    for text in req.notes:
        note(f"[yellow]{'' if text.startswith('warning:') else 'note: '}[/]{as_flags(text)}")
    if parents:
        note("after: " + " -> ".join(f"{p.concept} ({p.path})" for p in parents))


train.__doc__ += EXAMPLES
