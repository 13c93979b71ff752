"""What an adapter's duge.json records of how it was trained (records.AdapterRecord; docs/adapter-format.md), and
the part of it that two adapters trained alike share, which a resumed bench compares (bench.check_finished)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from . import __version__
from .records import AdapterRecord, BaseRef, ParentRef

# the hyperparameters two adapters trained alike agree on (not the numeric precision, sampler or timestep rule)
COMPARED = ("steps", "lr", "batch", "seed", "max_prompts", "init", "adversarial_rounds", "repair", "own_share", "replay")


def hyperparameters(cfg, sampler: dict | None) -> dict:
    """The record's `hyperparameters` entry for a train.TrainConfig; the options that are off are left out."""
    return {"steps": cfg.steps, "lr": cfg.lr, "batch": cfg.batch, "seed": cfg.seed, "max_prompts": cfg.max_prompts,
            "mixed_precision": cfg.mixed_precision, "timesteps": "uniform[0, T)",
            "gradient_checkpointing": cfg.gradient_checkpointing, "sampler": sampler, "init": cfg.start(),
            **({"adversarial_rounds": cfg.adversarial} if cfg.adversarial else {}),
            **({"repair": "theta_0"} if cfg.repair else {}),
            **({"own_share": cfg.own_share} if cfg.own_share else {}),
            **({"replay": "clean first"} if cfg.clean_replay else {})}


def make_record(base, req, parents: list, cfg, base_fp: str, history: list[dict], seconds: float,
                data_info: dict) -> AdapterRecord:
    """The adapter's record: request, method, settings, base, lineage, data, time and the last 20 steps' losses."""
    tail = history[-20:]
    final = {k: sum(h[k] for h in tail) / len(tail) for k in tail[0]} if tail else {}
    return AdapterRecord(
        request=req, method=cfg.method, loss_weights=cfg.loss_weights(), hyperparameters=hyperparameters(cfg, base.sampler),
        lora=cfg.lora.to_dict(), base=BaseRef(base.name, base.source, base_fp),
        parents=[ParentRef(i + 1, p.concept, p.sha256, p.ref) for i, p in enumerate(parents)],
        data=data_info, seconds=round(seconds, 1), final_losses={k: round(v, 6) for k, v in final.items()},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), duge_lora_version=__version__)


def comparable_settings(what) -> dict:
    """The training settings that an AdapterRecord records, or that a train.TrainConfig would record, as JSON values:
    method, LoRA spec, loss weights (not for a closed-form method, which records its own) and COMPARED. Two adapters
    trained alike give equal dicts."""
    from .train import CLOSED_FORM

    if isinstance(what, AdapterRecord):
        d = {"method": what.method, "lora": what.lora, "loss_weights": what.loss_weights, **what.hyperparameters}
    else:
        d = {"method": what.method, "lora": what.lora.to_dict(), "loss_weights": what.loss_weights(),
             **hyperparameters(what, None)}
    d = {k: d.get(k) for k in ("method", "lora", "loss_weights", *COMPARED)}
    if d["method"] in CLOSED_FORM:
        d.pop("loss_weights")
    return json.loads(json.dumps(d))
