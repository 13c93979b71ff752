"""Train one unlearning adapter on top of the earlier ones: the recipe, read top to bottom.

theta_{k-1} = base + the earlier adapters (merged, frozen). A new LoRA (B = 0, so training starts exactly at
theta_{k-1}) learns the request with the objective picked from losses.OBJECTIVES (method.md, "Loss").
The frozen reference model is the same UNet with the new adapter switched off.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from . import __version__
from .adapter import Adapter, LoraSpec, attach, factors, fingerprint, save_adapter, spec_dict, target_names
from .card import adapter_card
from .concepts import Request, prompt_sets
from .data import cached_latents
from .errors import DugeError
from .io import atomic_path
from .losses import OBJECTIVES, StepOutputs, total
from .merge import merge_into
from .models import Base

NEW = "duge_new"        # peft name of the adapter being trained
CLOSED_FORM = ("uce",)  # methods that compute the adapter without training
METHODS = (*OBJECTIVES, *CLOSED_FORM)
Progress = Callable[[str, int, int, dict], None]


class TrainingStopped(DugeError):
    """Training stopped early (Ctrl-C or a non-finite loss); a checkpoint allows --resume."""
    exit_code = 1
    interrupted = False              # True for Ctrl-C, False for a non-finite loss


@dataclass(frozen=True)
class TrainConfig:
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

    def loss_weights(self) -> dict:
        return dict(OBJECTIVES[self.method].weights if self.method in OBJECTIVES else {}) | (self.weights or {})


def check_parents(parents: list[Adapter], base_fp: str, names: list[str]) -> None:
    """Every earlier adapter must be made for this base and adapt exactly the modules this run adapts."""
    shas = [p.sha256 for p in parents]
    if len(set(shas)) != len(shas):
        raise DugeError("The same adapter is listed twice among the earlier adapters.", "List each earlier adapter once.")
    for p in parents:
        fp = p.record.get("base", {}).get("fingerprint")
        if fp and fp != base_fp:
            raise DugeError(f"{p.path} was trained for another base (fingerprint {fp}; this base is {base_fp}).",
                            "Use the --base it was trained on, or leave it out.")
        if sorted(p.weights) != names:
            raise DugeError(f"{p.path} adapts other modules than this run ({', '.join(p.spec.targets)} vs the requested --targets).",
                            f"Pass --targets {','.join(p.spec.targets)} so all adapters of a stack adapt the same projections.")


class AttentionCapture:
    """Forward hooks that collect the output of every cross-attention block (attn2), in call order."""

    def __init__(self, unet):
        self.outputs: list[torch.Tensor] = []
        self.enabled = False
        self.handles = [m.register_forward_hook(self._hook) for n, m in unet.named_modules() if n.endswith("attn2")]

    def _hook(self, module, inputs, output):
        if self.enabled:
            self.outputs.append(output)

    def take(self, rows: slice) -> list[torch.Tensor]:
        out, self.outputs = [o[rows] for o in self.outputs], []
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@dataclass
class TrainData:
    """Latents and prompt embeddings of the three data sets."""
    anchor_x: torch.Tensor               # (Na, C, h, w), latents of anchor prompts
    pairs: list[tuple[int, int, int]]    # (anchor latent row, target emb row, anchor emb row)
    preserve_x: torch.Tensor
    preserve_e: list[int]                # emb row of each preserve latent
    replay_x: torch.Tensor
    replay_e: list[int]
    emb: torch.Tensor                    # (P, L, D) text embeddings of every distinct prompt
    cached: dict[str, bool]
    keep: torch.Tensor | None = None     # (N, D) token states of every prompt to keep (preserve + replay + generic)
    keep_near: torch.Tensor | None = None  # (M, D) token states of the preserve prompts alone (related concepts)
    uncond: torch.Tensor | None = None   # (1, L, D) the empty prompt's states


@torch.no_grad()
def encode_prompts(base: Base, prompts: list[str]) -> torch.Tensor:
    tok = base.pipe.tokenizer
    ids = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
    return torch.cat([base.pipe.text_encoder(ids[i:i + 256].to(base.device))[0] for i in range(0, len(ids), 256)]).float()


def make_data(base: Base, req: Request, earlier: list[Request], parents: list[Adapter], base_fp: str,
              cfg: TrainConfig, cache: Path | None, progress: Progress) -> TrainData:
    """Prompt sets -> latents from theta_{k-1} (cached) and embeddings.

    Only the segments the objective reads are generated (the baselines read the anchor set alone)."""
    import random

    used = OBJECTIVES[cfg.method].segments
    sets = prompt_sets(req, earlier, base.toy_world, cfg.seed)
    rng = random.Random(cfg.seed)
    pick = lambda xs: sorted(rng.sample(xs, min(cfg.max_prompts, len(xs))))  # noqa: E731
    anchors = pick(sorted(set(sets.anchor)))
    preserve = pick(sets.preserve) if sets.preserve and "preserve" in used else []
    replay = pick(sets.replay) if "replay" in used else []
    parent_shas = [p.sha256 for p in parents]
    xs, cached = {}, {}
    for name, prompts in (("anchor", anchors), ("preserve", preserve), ("replay", replay)):
        if not prompts:
            xs[name] = torch.zeros(0)
            continue
        xs[name], cached[name] = cached_latents(base, prompts, cfg.seed, base_fp, parent_shas, cache,
                                                progress=lambda d, t, n=name: progress(f"data:{n}", d, t, {}))
    everything = sorted(set(anchors) | set(sets.target) | set(preserve) | set(replay))
    row = {p: i for i, p in enumerate(everything)}
    anchor_row = {p: i for i, p in enumerate(anchors)}
    pairs = [(anchor_row[a], row[t], row[a]) for t, a in zip(sets.target, sets.anchor) if a in anchor_row]
    keep_prompts = sorted(set(sets.preserve) | set(sets.replay) | set(sets.keep))
    # pp_kv locks the related concepts' keys/values, but not the anchor's: the target must move onto those
    near = sorted({p for p in sets.preserve if p not in set(sets.anchor)})
    keep = encode_prompts(base, keep_prompts).flatten(0, 1) if keep_prompts else None
    return TrainData(xs["anchor"], pairs, xs["preserve"], [row[p] for p in preserve], xs["replay"],
                     [row[p] for p in replay], encode_prompts(base, everything), cached, keep=keep,
                     uncond=encode_prompts(base, [""]),
                     keep_near=encode_prompts(base, near).flatten(0, 1) if near else None)


def sample_batch(data: TrainData, segments: tuple[str, ...], n: int, gen: torch.Generator):
    """Rows of the three segments: x_0 (B, C, h, w), train / reference embedding rows, segment slices."""
    x, e_train, e_ref, seg, start = [], [], [], {}, 0
    for name in segments:
        if name == "anchor":
            idx = torch.randint(0, len(data.pairs), (n,), generator=gen).tolist()
            rows = [data.pairs[i] for i in idx]
            x.append(data.anchor_x[[r[0] for r in rows]])
            e_train += [r[1] for r in rows]
            e_ref += [r[2] for r in rows]
        else:
            lat, emb = (data.preserve_x, data.preserve_e) if name == "preserve" else (data.replay_x, data.replay_e)
            if not len(emb):
                continue
            idx = torch.randint(0, len(emb), (n,), generator=gen).tolist()
            x.append(lat[idx])
            e_train += [emb[i] for i in idx]
            e_ref += [emb[i] for i in idx]
        seg[name] = slice(start, start + n)
        start += n
    return torch.cat(x), e_train, e_ref, seg


def _extra_refs(unet, kinds: tuple[str, ...], xt, t, seg: dict, e_train: list[int], data: TrainData, dev) -> dict:
    """Frozen predictions on the anchor rows under the target prompt and/or the empty prompt (ESD needs both)."""
    rows = seg["anchor"]
    out = {}
    for kind in kinds:
        emb = data.emb[e_train[rows]] if kind == "target" else data.uncond.expand(rows.stop - rows.start, -1, -1)
        out[kind] = unet(xt[rows], t[rows], encoder_hidden_states=emb.to(dev)).sample
    return out


def training_step(unet, capture: AttentionCapture, data: TrainData, cfg: TrainConfig, ctx: dict, gen: torch.Generator):
    """One optimisation step's forward passes and losses: returns (loss, per-term floats)."""
    objective = OBJECTIVES[cfg.method]
    x0, e_train, e_ref, seg = sample_batch(data, objective.segments, cfg.batch, gen)
    dev = ctx["device"]
    x0 = x0.to(dev)
    noise = torch.randn(x0.shape, generator=gen).to(dev)
    t = torch.randint(0, ctx["scheduler"].config.num_train_timesteps, (len(x0),), generator=gen).to(dev)
    xt = ctx["scheduler"].add_noise(x0, noise, t)
    with ctx["autocast"]():
        with torch.no_grad():                                   # frozen theta_{k-1}: the new adapter off
            unet.disable_adapters()
            capture.enabled = True
            eps_ref = unet(xt, t, encoder_hidden_states=data.emb[e_ref].to(dev)).sample
            attn_ref = capture.take(seg.get("anchor", slice(0, 0)))
            capture.enabled = False
            extra = _extra_refs(unet, objective.extra_refs, xt, t, seg, e_train, data, dev)
            unet.enable_adapters()
            capture.enabled = True
        eps = unet(xt, t, encoder_hidden_states=data.emb[e_train].to(dev)).sample
        attn = capture.take(seg.get("anchor", slice(0, 0)))
        capture.enabled = False
    fac = factors(unet, NEW)
    names = sorted(fac)
    out = StepOutputs(eps=eps, eps_ref=eps_ref, noise=noise, segments=seg, attn=attn, attn_ref=attn_ref,
                      factors=[fac[n] for n in names], prev_a=[ctx["prev_a"].get(n, []) for n in names],
                      scaling=cfg.lora.scaling, keep=None if data.keep is None else data.keep.to(dev),
                      keep_norms=[ctx["keep_norms"][n] for n in names] if ctx["keep_norms"] else [],
                      keep_near=None if data.keep_near is None else data.keep_near.to(dev),
                      keep_near_norms=[ctx["keep_near_norms"][n] for n in names] if ctx["keep_near_norms"] else [],
                      eps_uncond_ref=extra.get("uncond"), eps_target_ref=extra.get("target"))
    terms = objective.fn(out, ctx["weights"])
    return total(terms, ctx["weights"]), {k: float(v.detach()) for k, v in terms.items()}


# ----------------------------------------------------------------------------- checkpoints
def partial_dir(output: Path) -> Path:
    """Where an unfinished run keeps its checkpoint: beside the output, never inside it."""
    return output.with_name(output.name + ".partial")


def _config_id(cfg: TrainConfig, req: Request, parents: list[Adapter], base_fp: str) -> str:
    return json.dumps({"cfg": asdict(cfg), "req": req.to_dict(), "parents": [p.sha256 for p in parents], "base": base_fp},
                      sort_keys=True, default=str)


def save_checkpoint(folder: Path, step: int, params: list[torch.Tensor], opt, gen: torch.Generator, config_id: str) -> None:
    """LoRA factors + optimizer moments + RNG state, in safetensors (never pickle), written atomically."""
    from safetensors.torch import save_file

    tensors = {f"param.{i}": p.detach().cpu().contiguous() for i, p in enumerate(params)}
    for i, p in enumerate(params):
        for k, v in opt.state.get(p, {}).items():          # AdamW: step, exp_avg, exp_avg_sq
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    tensors["rng"] = gen.get_state()
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "checkpoint.safetensors") as tmp:
        save_file(tensors, str(tmp))
    with atomic_path(folder / "state.json") as tmp:
        tmp.write_text(json.dumps({"step": step, "config": config_id}))


def load_checkpoint(folder: Path, params: list[torch.Tensor], opt, gen: torch.Generator, config_id: str) -> int:
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text())
    if state["config"] != config_id:
        raise DugeError(f"The checkpoint in {folder} was made with other settings, base or earlier adapters.",
                        "Rerun with the same options, or delete that folder to start over.")
    tensors = load_file(str(folder / "checkpoint.safetensors"))
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(tensors[f"param.{i}"])
            moments = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"opt.{i}.")}
            if moments:
                opt.state[p] = {k: (v if k == "step" else v.to(p.device)) for k, v in moments.items()}
    gen.set_state(tensors["rng"])
    return int(state["step"])


# ----------------------------------------------------------------------------- the recipe
def _autocast(mixed_precision: str, device: torch.device):
    if mixed_precision == "no":
        return torch.autocast(device.type, enabled=False)
    if mixed_precision == "fp16" and device.type != "cuda":
        raise DugeError("--mixed-precision fp16 needs a GPU (it is about 27x slower on a CPU).", "Use bf16 or no on a CPU.")
    return torch.autocast(device.type, dtype=torch.bfloat16 if mixed_precision == "bf16" else torch.float16)


@dataclass
class Session:
    """Everything a training run holds: the UNet with theta_{k-1} merged and the new adapter, data, optimizer."""
    unet: object
    data: TrainData
    params: list[torch.Tensor]
    opt: torch.optim.Optimizer
    gen: torch.Generator
    ctx: dict
    capture: AttentionCapture
    base_fp: str


def previous_model(base: Base, parents: list[Adapter], cfg: TrainConfig) -> tuple[str, list[Request]]:
    """Check the parents against the base and merge them into its UNet, in place: theta_{k-1}.

    Returns the base fingerprint (taken before the merge) and the earlier requests, in order."""
    unet = base.pipe.unet
    base_fp = fingerprint(unet)
    check_parents(parents, base_fp, target_names(unet, cfg.lora))
    merge_into(unet, parents)
    return base_fp, [Request.from_dict(p.record["request"]) for p in parents if "request" in p.record]


def prepare(base: Base, req: Request, parents: list[Adapter], cfg: TrainConfig, cache: Path | None = None,
            progress: Progress | None = None) -> Session:
    """Check the parents, merge them into the base UNet (in place: theta_{k-1}), make the data, attach adapter k."""
    from diffusers import DDPMScheduler

    progress = progress or (lambda *a: None)
    if cfg.method not in OBJECTIVES:
        raise DugeError(f"Unknown method {cfg.method!r}.", f"Choose one of: {', '.join(METHODS)}.")
    unet = base.pipe.unet
    base_fp, earlier = previous_model(base, parents, cfg)
    data = make_data(base, req, earlier, parents, base_fp, cfg, cache, progress)
    unet.requires_grad_(False)
    torch.manual_seed(cfg.seed)                                # peft draws A from the global RNG
    attach(unet, cfg.lora, NEW)                                # B = 0: exactly theta_{k-1}
    params = [p for n, p in unet.named_parameters() if f".{NEW}." in n]
    for p in params:
        p.requires_grad_(True)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    ctx = {"device": base.device, "scheduler": DDPMScheduler.from_config(base.pipe.scheduler.config),
           "weights": cfg.loss_weights(), "autocast": lambda: _autocast(cfg.mixed_precision, base.device),
           "prev_a": _previous_a(parents), "keep_norms": _keep_norms(unet, data.keep),
           "keep_near_norms": _keep_norms(unet, data.keep_near)}
    return Session(unet, data, params, torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0),
                   torch.Generator().manual_seed(cfg.seed), ctx, AttentionCapture(unet), base_fp)


def optimise(s: Session, cfg: TrainConfig, start: int, ckpt: Path, config_id: str, progress: Progress) -> list[dict]:
    """Steps start..cfg.steps; checkpoints every cfg.checkpoint_every; returns the per-step loss terms."""
    history, done, good = [], start, start
    try:
        for step in range(start, cfg.steps):
            loss, terms = training_step(s.unet, s.capture, s.data, cfg, s.ctx, s.gen)
            value = float(loss.detach())
            if not math.isfinite(value):
                kept = f"; the last good checkpoint (step {good}) is in {ckpt}." if ckpt.exists() else "."
                raise TrainingStopped(f"The loss became {value} at step {step + 1}, so training stopped{kept}",
                                      "Lower --lr (or a loss weight) and rerun" + (" with --resume." if ckpt.exists() else "."))
            s.opt.zero_grad(set_to_none=True)
            loss.backward()
            s.opt.step()
            done = step + 1
            history.append(terms | {"loss": value})
            progress("train", done, cfg.steps, history[-1])
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                save_checkpoint(ckpt, done, s.params, s.opt, s.gen, config_id)
                good = done
    except KeyboardInterrupt:
        save_checkpoint(ckpt, done, s.params, s.opt, s.gen, config_id)
        stop = TrainingStopped(f"Training was interrupted after step {done}; a checkpoint is kept in {ckpt}.",
                               "Rerun the same command with --resume to continue.")
        stop.interrupted = True
        raise stop from None
    return history


def train_adapter(base: Base, req: Request, parents: list[Adapter], cfg: TrainConfig, output: Path, *,
                  resume: bool = False, cache: Path | None = None, progress: Progress | None = None) -> dict:
    """Train adapter k for `req` on base + parents (in order) and write its folder to `output` atomically.

    The base's UNet is modified in place (parents merged, adapter attached): load a fresh base per run.
    Returns the adapter's record (duge.json). Raises TrainingStopped on Ctrl-C or a non-finite loss, after
    keeping a checkpoint in partial_dir(output) that `resume=True` continues from.
    """
    t0, progress = time.time(), progress or (lambda *a: None)
    reset_peak_memory(base.device)
    if cfg.method in CLOSED_FORM:
        return closed_form(base, req, parents, cfg, output)
    s = prepare(base, req, parents, cfg, cache, progress)
    ckpt, config_id = partial_dir(output), _config_id(cfg, req, parents, s.base_fp)
    start = load_checkpoint(ckpt, s.params, s.opt, s.gen, config_id) if resume and (ckpt / "state.json").exists() else 0
    t_loop = time.time()
    try:
        history = optimise(s, cfg, start, ckpt, config_id, progress)
    finally:
        s.capture.close()
    record = _record(base, req, parents, cfg, s.base_fp, history, time.time() - t0, _data_info(s.data))
    record["seconds_per_step"] = round((time.time() - t_loop) / max(1, len(history)), 4)
    record["peak_mb"] = peak_memory_mb(base.device)
    with atomic_path(output) as tmp:
        save_adapter(tmp, factors(s.unet, NEW), cfg.lora, record, adapter_card(record))
    shutil.rmtree(ckpt, ignore_errors=True)
    return record


@torch.no_grad()
def _keep_norms(unet, keep: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """||W E^T||_F^2 of each adapted module of theta_{k-1} on the keep token states (the scale of kv_preservation)."""
    if keep is None:
        return {}
    out = {}
    for name, mod in unet.named_modules():
        if hasattr(mod, "lora_A") and NEW in mod.lora_A:
            w = mod.base_layer.weight
            out[name] = (keep.to(w.device, w.dtype) @ w.T).float().pow(2).sum().clamp_min(1e-12)
    return out


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA's counter; on Linux the process's VmHWM via /proc/self/clear_refs)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass                                   # not Linux: the peak then covers the whole process


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since the last reset_peak_memory: CUDA's max allocated on a GPU, else the process's peak
    resident set size (VmHWM; ru_maxrss where /proc is missing)."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)            # kB
    except OSError:
        pass
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)   # Linux: KiB


def _previous_a(parents: list[Adapter]) -> dict[str, list[torch.Tensor]]:
    prev: dict[str, list[torch.Tensor]] = {}
    for p in parents:
        for name, (a, _) in p.weights.items():
            prev.setdefault(name, []).append(a.float())
    return prev


def _data_info(data: TrainData) -> dict:
    return {"anchor_latents": len(data.anchor_x), "target_pairs": len(data.pairs),
            "preserve_latents": len(data.preserve_e), "replay_latents": len(data.replay_e), "cached": data.cached}


def _record(base: Base, req: Request, parents: list[Adapter], cfg: TrainConfig, base_fp: str,
            history: list[dict], seconds: float, data_info: dict) -> dict:
    tail = history[-20:]
    final = {k: sum(h[k] for h in tail) / len(tail) for k in tail[0]} if tail else {}
    return {
        "format": "duge-lora-adapter/1",
        "duge_lora_version": __version__,
        "request": req.to_dict(),
        "method": cfg.method,
        "loss_weights": cfg.loss_weights(),
        "hyperparameters": {"steps": cfg.steps, "lr": cfg.lr, "batch": cfg.batch, "seed": cfg.seed,
                            "mixed_precision": cfg.mixed_precision, "timesteps": "uniform[0, T)",
                            "gradient_checkpointing": cfg.gradient_checkpointing, "sampler": base.sampler},
        "lora": spec_dict(cfg.lora),
        "base": {"name": base.name, "source": base.source, "fingerprint": base_fp},
        "parents": [{"order": i + 1, "concept": p.concept, "sha256": p.sha256, "path": str(p.path)} for i, p in enumerate(parents)],
        "data": data_info,
        "seconds": round(seconds, 1),
        "final_losses": {k: round(v, 6) for k, v in final.items()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


@torch.no_grad()
def closed_form(base: Base, req: Request, parents: list[Adapter], cfg: TrainConfig, output: Path) -> dict:
    """The UCE baseline (uce.py): the edit of every adapted map in closed form on theta_{k-1}, as a LoRA."""
    from .uce import low_rank, uce_delta

    t0, unet = time.time(), base.pipe.unet
    base_fp, earlier = previous_model(base, parents, cfg)
    names = target_names(unet, cfg.lora)
    sets = prompt_sets(req, earlier, base.toy_world, cfg.seed)
    c = encode_prompts(base, sets.target).flatten(0, 1)            # (N, d) target token states
    a = encode_prompts(base, sets.anchor).flatten(0, 1)            # (N, d) paired anchor token states
    keep = sorted(set(sets.preserve) | set(sets.replay) | set(sets.keep))
    p = encode_prompts(base, keep).flatten(0, 1)
    lam = cfg.loss_weights().get("uce_lambda", 1.0)
    modules, weights, err = dict(unet.named_modules()), {}, []
    for name in names:
        w = modules[name].weight.float()
        delta = uce_delta(w, c.to(w.device), a.to(w.device), p.to(w.device), lam)
        weights[name] = low_rank(delta, cfg.lora.rank, cfg.lora.scaling)
        err.append(float(torch.linalg.norm(delta - cfg.lora.scaling * weights[name][1] @ weights[name][0]) / torch.linalg.norm(delta).clamp_min(1e-12)))
    info = {"target_tokens": len(c), "keep_tokens": len(p), "svd_relative_error_max": round(max(err), 6)}
    record = _record(base, req, parents, cfg, base_fp, [], time.time() - t0, info)
    record["loss_weights"] = {"uce_lambda": lam}
    record["peak_mb"] = peak_memory_mb(base.device)
    with atomic_path(output) as tmp:
        save_adapter(tmp, weights, cfg.lora, record, adapter_card(record))
    return record
