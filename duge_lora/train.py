"""Train one unlearning adapter on top of the earlier ones: the recipe, read top to bottom.

theta_{k-1} = base + the earlier adapters (merged with compose's sum, frozen). A new LoRA, starting exactly at
theta_{k-1} (B = 0) or at UCE's closed-form edit of it (DUGE's default, TrainConfig.init), learns the request with
the objective picked from losses.OBJECTIVES (method.md,
"Loss"): prepare (data, adapter, step settings) -> optimise (steps, checkpoints, resume, NaN stop) -> save.
The parts live beside it: trainset.py (data), step.py (one step), checkpoint.py, hooks.py, memory.py; the
closed-form UCE baseline is uce.py.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import validate
from .adapter import LoraSpec, attach, factors, target_names
from .card import adapter_card
from .checkpoint import has_checkpoint, load_checkpoint, partial_dir, save_checkpoint
from .compose import Item, apply_items
from .data import check_cache
from .distributed import Ranks
from .errors import DugeError, TrainingStopped, param, signal_code
from .formats import write_adapter_folder
from .hooks import AttentionCapture
from .interrupts import step_boundaries
from .io import atomic_path
from .losses import OBJECTIVES
from .memory import peak_memory_mb, reset_peak_memory
from .models import Base
from .records import Adapter, AdapterRecord, Request, check_lineage, requests_of
from .repair import BaseWeights, Repair, erased_words, repaired_rows
from .step import NEW, Step, keep_states, training_step
from .train_record import make_record
from .trainset import make_data

CLOSED_FORM = ("uce",)  # methods that compute the adapter without training
METHODS = (*OBJECTIVES, *CLOSED_FORM)
MIXED_PRECISION = ("no", "bf16", "fp16")
INITS = ("zero", "uce")  # adapter k starts at B = 0 (exactly theta_{k-1}), or at the closed-form UCE edit (uce.py)
Progress = Callable[[str, int, int, dict], None]


@dataclass(frozen=True)
class TrainConfig:
    """How one request is trained; the one owner of these defaults."""
    method: str = "duge"
    steps: int = 100
    lr: float = 4e-3
    batch: int = 8                       # rows per data segment (anchor / preserve / replay)
    seed: int = 0
    lora: LoraSpec = field(default_factory=LoraSpec)
    weights: dict | None = None          # None: the objective's defaults
    checkpoint_every: int = 50
    mixed_precision: str = "no"          # no | bf16 | fp16
    gradient_checkpointing: bool = False
    max_prompts: int = 64                # per data set
    init: str | None = None              # zero | uce: where adapter k starts (INITS); None: the objective's
    adversarial: int = 0                 # adversarial rounds (adversarial.py; the robust option); 0: none
    repair: bool = False                 # L_pp / L_replay toward theta_0 on rows naming no erased concept (repair.py)
    own_share: float = 0.0               # after adversarial rounds, this share of anchor rows from the request's own pairs
    clean_replay: bool = False           # the replay set keeps every prompt naming no erased concept (trainset.make_data)

    def __post_init__(self):
        if self.method not in METHODS:
            raise DugeError(f"Unknown method {self.method!r}.", f"Choose one of: {', '.join(METHODS)}.", option="method")
        if self.init is not None and self.init not in INITS:
            raise DugeError(f"{param('init')} {self.init!r} is not one of {', '.join(INITS)}.", "Pick one of those.",
                            option="init")
        if self.mixed_precision not in MIXED_PRECISION:
            raise DugeError(f"{param('mixed_precision')} {self.mixed_precision!r} is not one of {', '.join(MIXED_PRECISION)}.",
                            "Pick one of those.", option="mixed_precision")
        validate.training(self)
        if not 0 <= self.adversarial <= 20:
            raise DugeError(f"{param('adversarial')} {self.adversarial} is outside 0..20.", "Pass 4, for example.",
                            option="adversarial")
        if self.adversarial and self.method in CLOSED_FORM:
            raise DugeError(f"{self.method} computes its adapter in closed form, with no steps for adversarial rounds.",
                            f"Leave {param('robust')} out with {param('method')} {self.method}.", option="robust")
        if not 0 <= self.own_share < 1:
            raise DugeError(f"The share of a batch's anchor rows drawn from the request's own pairs is {self.own_share}, "
                            "outside [0, 1).", "Pass 0.5, for example, or 0 to draw all pairs alike.")
        if self.repair and not {"preserve", "replay"} & set(getattr(OBJECTIVES.get(self.method), "segments", ())):
            raise DugeError(f"{param('repair')} reads the preserve and replay rows, which {self.method} does not train on.",
                            f"Leave {param('repair')} out with {param('method')} {self.method}.", option="repair")

    def start(self) -> str:
        """Where adapter k starts: as asked, or the objective's default (DUGE: the closed-form edit)."""
        return self.init or (OBJECTIVES[self.method].init if self.method in OBJECTIVES else "zero")

    def loss_weights(self) -> dict:
        return dict(OBJECTIVES[self.method].weights if self.method in OBJECTIVES else {}) | (self.weights or {})


def _autocast(mixed_precision: str, device: torch.device):
    if mixed_precision == "no":
        return torch.autocast(device.type, enabled=False)
    if mixed_precision == "fp16" and device.type != "cuda":
        raise DugeError(f"{param('mixed_precision')} fp16 needs a GPU (it is about 27x slower on a CPU).",
                        "Use bf16 or no on a CPU.", option="mixed_precision")
    return torch.autocast(device.type, dtype=torch.bfloat16 if mixed_precision == "bf16" else torch.float16)


@dataclass
class Session:
    """A training run in progress: the step's inputs, the trained parameters, optimizer and data RNG."""
    step: Step
    params: list[torch.Tensor]
    opt: torch.optim.Optimizer
    gen: torch.Generator
    base_fp: str
    adversary: object | None = None      # adversarial.Adversary with the robust option


def previous_model(base: Base, parents: list[Adapter], lora: LoraSpec) -> tuple[str, list[Request]]:
    """Check the parents against the base and merge them into its UNet, in place: theta_{k-1} (compose's sum).

    Returns the base fingerprint (taken before the merge) and the earlier requests, in order."""
    unet = base.pipe.unet
    base_fp = base.fingerprint
    check_lineage(parents, base_fp, target_names(unet, lora))
    apply_items(base, [Item(p) for p in parents], base_fp)
    return base_fp, requests_of(parents)


def prepare(base: Base, req: Request, parents: list[Adapter], cfg: TrainConfig, cache: Path | None = None,
            progress: Progress | None = None, ranks: Ranks | None = None) -> Session:
    """Check the parents, merge them into the base UNet (in place: theta_{k-1}), make the data, attach adapter k."""
    from diffusers import DDPMScheduler

    progress = progress or (lambda *a: None)
    unet, objective = base.pipe.unet, OBJECTIVES[cfg.method]
    adversary = None
    if cfg.adversarial:                          # the inner attack (adversarial.py): the toy's scenes or the templates
        from .adversarial import Adversary
        adversary = Adversary(base, req, cfg, cache)
    held = BaseWeights(unet, {n for p in parents for n in p.weights}) if cfg.repair and parents else None
    base_fp, earlier = previous_model(base, parents, cfg.lora)
    sets = base.world.prompt_sets(req, earlier, cfg.seed)
    with (ranks or Ranks()).main_first():        # rank 0 makes and caches the data; the others then read it
        data = make_data(base, sets, objective.segments, cfg.seed, cfg.max_prompts, (base_fp, [p.sha256 for p in parents]),
                         cache, progress, erased_words([req, *earlier]) if cfg.clean_replay else None)
    data.anchor_as_target = base.world.anchor_check(base, req, data.anchor_prompts, data.anchor_x)
    start = _closed_form_start(base, req, earlier, cfg) if cfg.start() == "uce" else None
    unet.requires_grad_(False)
    torch.manual_seed(cfg.seed)                                # peft draws A from the global RNG
    attach(unet, cfg.lora, NEW)                                # B = 0: exactly theta_{k-1} ...
    cast_training_params(unet, NEW)                            # fp32 LoRA on an fp16/bf16 base
    if start is not None:                                      # ... or the closed-form edit
        _set_factors(unet, NEW, start)
    params = [p for n, p in unet.named_parameters() if f".{NEW}." in n]
    for p in params:
        p.requires_grad_(True)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    names = sorted(factors(unet, NEW))
    earlier_a = {n: [p.weights[n][0].float() for p in parents] for n in names}
    weights = cfg.loss_weights()
    step = Step(unet, AttentionCapture(unet), data, DDPMScheduler.from_config(base.pipe.scheduler.config), objective,
                weights, cfg.batch, cfg.lora.scaling, lambda: _autocast(cfg.mixed_precision, base.device),
                [earlier_a[n] for n in names], keep_states(unet, names, data.keep), keep_states(unet, names, data.keep_near),
                keep_states(unet, names, data.protect),
                AttentionCapture(unet, "ff") if weights.get("keep_ff") else None,
                Repair(held, repaired_rows(data.prompts, erased_words([req, *earlier]))) if held else None, cfg.own_share)
    return Session(step, params, torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0),
                   torch.Generator().manual_seed(cfg.seed), base_fp, adversary)


def cast_training_params(unet, name: str) -> None:
    """The trained LoRA parameters in float32 whatever the base's dtype (diffusers' training scripts do the same
    with `cast_training_params`): fp16 factors would lose small updates to rounding. peft casts the layer's input
    to the factors' dtype and the result back to the base layer's, so the frozen UNet stays in its own dtype."""
    for n, p in unet.named_parameters():
        if f".{name}." in n and p.dtype != torch.float32:
            p.data = p.data.float()


def _closed_form_start(base: Base, req: Request, earlier: list[Request], cfg: TrainConfig) -> dict:
    """UCE's closed-form edit of theta_{k-1} as factors of adapter k's shape (uce.uce_factors): a starting point
    that already maps the target's keys/values onto the anchor's, which the DUGE losses then refine."""
    from .uce import uce_factors

    return uce_factors(base, req, earlier, cfg.lora, cfg.seed, cfg.loss_weights().get("uce_lambda", 1.0))[0]


@torch.no_grad()
def _set_factors(unet, name: str, start: dict) -> None:
    """Copy factors (module -> (A, B)) into the live adapter `name`."""
    live = factors(unet, name)
    for module, (a, b) in start.items():
        live[module][0].copy_(a)
        live[module][1].copy_(b)


def _non_finite(value: float, step: int, good: int, ckpt: Path) -> TrainingStopped:
    kept = f"; the last good checkpoint (step {good}) is in {ckpt}." if ckpt.exists() else "."
    return TrainingStopped(f"The loss became {value} at step {step + 1}, so training stopped{kept}",
                           f"Lower {param('lr')} (or a loss weight) and rerun" + (f" with {param('resume')}." if ckpt.exists() else "."),
                           option="lr")


def optimise(s: Session, cfg: TrainConfig, start: int, ckpt: Path, config_id: str, progress: Progress,
             ranks: Ranks | None = None) -> list[dict]:
    """Steps start..cfg.steps; checkpoints every cfg.checkpoint_every; returns the per-step loss terms."""
    history: list[dict] = []
    ranks = ranks or Ranks()
    try:
        with step_boundaries() as boundary:
            _steps(s, cfg, start, ckpt, config_id, progress, history, boundary, ranks)
    except KeyboardInterrupt as exc:
        done = start + len(history)
        if ranks.is_main:
            save_checkpoint(ckpt, done, s.params, s.opt, s.gen, config_id, _extra(s))
        stop = TrainingStopped(f"Training was interrupted after step {done}; a checkpoint is kept in {ckpt}.",
                               "Rerun the same command to continue from it.", option="resume")
        stop.interrupted, stop.signal_code = True, signal_code(exc)
        raise stop from None
    return history


def _steps(s: Session, cfg: TrainConfig, start: int, ckpt: Path, config_id: str, progress: Progress,
           history: list[dict], boundary, ranks: Ranks) -> None:
    """The optimisation loop proper; `boundary()` raises a held interruption between two steps. With several ranks
    each computes its shard of the global batch and the gradients are averaged before the step (distributed.py)."""
    good = start
    for step in range(start, cfg.steps):
        if s.adversary is not None and step in s.adversary.at:
            s.adversary.round(s, step, boundary)
            progress("adversarial", s.adversary.at.index(step) + 1, len(s.adversary.at), {})
        loss, terms = training_step(s.step, s.gen, (ranks.rank, ranks.world))
        logged = ranks.mean_values(terms | {"loss": float(loss.detach())})
        value = logged["loss"]
        if not math.isfinite(value):
            raise _non_finite(value, step, good, ckpt)
        s.opt.zero_grad(set_to_none=True)
        loss.backward()
        ranks.mean_grads(s.params)
        s.opt.step()
        done = step + 1
        history.append(logged)
        progress("train", done, cfg.steps, history[-1])
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
            if ranks.is_main:
                save_checkpoint(ckpt, done, s.params, s.opt, s.gen, config_id, _extra(s))
            good = done
        boundary()


def _extra(s: Session) -> dict | None:
    return s.adversary.checkpoint_tensors() if s.adversary is not None else None


def _config_id(cfg: TrainConfig, req: Request, parents: list[Adapter], base_fp: str) -> str:
    d = {k: v for k, v in asdict(cfg).items() if not (k in ("own_share", "clean_replay") and not v)}  # ids from before them
    return json.dumps({"cfg": d, "req": req.to_dict(), "parents": [p.sha256 for p in parents], "base": base_fp},
                      sort_keys=True, default=str)


def train_adapter(base: Base, req: Request, parents: list[Adapter], cfg: TrainConfig, output: Path, *,
                  resume: bool = False, cache: Path | None = None, progress: Progress | None = None,
                  ranks: Ranks | None = None) -> AdapterRecord:
    """Train adapter k for `req` on base + parents (in order) and write its folder to `output` atomically.

    The base's UNet is modified in place (parents merged, adapter attached): load a fresh base per run.
    Returns the adapter's record (duge.json). Raises TrainingStopped on Ctrl-C or a non-finite loss, after
    keeping a checkpoint in partial_dir(output) that `resume=True` continues from.
    """
    t0, progress = time.time(), progress or (lambda *a: None)
    modules = dict(base.pipe.unet.named_modules())
    validate.rank_fits(cfg.lora.rank, [tuple(modules[n].weight.shape) for n in target_names(base.pipe.unet, cfg.lora)])
    reset_peak_memory(base.device)
    if cfg.method in CLOSED_FORM:
        from .uce import train_uce
        return train_uce(base, req, parents, cfg, output)
    check_cache(cache)
    ranks = ranks or Ranks()
    if not ranks.is_main:
        progress = lambda *a: None  # noqa: E731 - rank 0 alone reports
    s = prepare(base, req, parents, cfg, cache, progress, ranks)
    ckpt, config_id = partial_dir(output), _config_id(cfg, req, parents, s.base_fp)
    kept: dict = {}
    start = load_checkpoint(ckpt, s.params, s.opt, s.gen, config_id, kept) if resume and has_checkpoint(ckpt) else 0
    if s.adversary is not None:
        s.adversary.restore(s.step.data, kept)
    t_loop = time.time()
    try:
        history = optimise(s, cfg, start, ckpt, config_id, progress, ranks)
    finally:
        for c in (s.step.capture, s.step.ff_capture):
            if c is not None:
                c.close()
    record = make_record(base, req, parents, cfg, s.base_fp, history, time.time() - t0, s.step.data.info())
    record.seconds_per_step = round((time.time() - t_loop) / max(1, len(history)), 4)
    record.peak_mb = peak_memory_mb(base.device)
    if ranks.world > 1:
        record.hyperparameters["processes"] = ranks.world
    if ranks.is_main:
        save(output, factors(s.step.unet, NEW), cfg.lora, record)
        shutil.rmtree(ckpt, ignore_errors=True)
    ranks.wait()
    return record


def save(output: Path, weights: dict, spec: LoraSpec, record: AdapterRecord) -> None:
    """Write the adapter folder atomically: weights with the record in the header, duge.json, the model card."""
    d = record.to_dict()
    with atomic_path(output) as tmp:
        write_adapter_folder(tmp, weights, spec, d, adapter_card(d))
