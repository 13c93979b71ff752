"""Checkpoints of an unfinished training run: LoRA factors, optimizer moments and RNG state, in safetensors
(never pickle), written atomically beside the output (OUTPUT.partial/), so `resume` continues exactly."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .errors import UsageError, param
from .io import atomic_path


def partial_dir(output: Path) -> Path:
    """Where an unfinished run keeps its checkpoint: beside the output, never inside it."""
    return output.with_name(output.name + ".partial")


def save_checkpoint(folder: Path, step: int, params: list[torch.Tensor], opt, gen: torch.Generator, config_id: str,
                    extra: dict[str, torch.Tensor] | None = None) -> None:
    """Parameters, AdamW moments and the data RNG after `step` (and `extra` tensors: the robust option's
    adversarial pairs), with the id of the settings that made them."""
    from safetensors.torch import save_file

    tensors = {f"param.{i}": p.detach().cpu().contiguous() for i, p in enumerate(params)}
    for i, p in enumerate(params):
        for k, v in opt.state.get(p, {}).items():          # AdamW: step, exp_avg, exp_avg_sq
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    tensors["rng"] = gen.get_state()
    tensors |= extra or {}
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "checkpoint.safetensors") as tmp:
        save_file(tensors, str(tmp))
    with atomic_path(folder / "state.json") as tmp:
        tmp.write_text(json.dumps({"step": step, "config": config_id}))


def has_checkpoint(folder: Path) -> bool:
    return (folder / "state.json").exists()


def checkpoint_step(folder: Path) -> int | None:
    """The step of the checkpoint in `folder`, or None when there is none (or it cannot be read)."""
    try:
        return int(json.loads((folder / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_checkpoint(folder: Path, params: list[torch.Tensor], opt, gen: torch.Generator, config_id: str,
                    extra: dict | None = None) -> int:
    """Restore what save_checkpoint wrote (refusing one made with other settings); returns its step. The `extra`
    tensors it kept (the robust option's, under `adv.`) are put in `extra` when it is given."""
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text())
    if state["config"] != config_id:
        raise UsageError(f"The checkpoint in {folder} was made with other settings, base or earlier adapters.",
                         f"Rerun the command that made it to continue, or pass {param('overwrite')} to discard it and "
                         "start over.", option="overwrite")
    tensors = load_file(str(folder / "checkpoint.safetensors"))
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(tensors[f"param.{i}"])
            moments = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"opt.{i}.")}
            if moments:
                opt.state[p] = {k: (v if k == "step" else v.to(p.device)) for k, v in moments.items()}
    gen.set_state(tensors["rng"])
    if extra is not None:
        extra |= {k: v for k, v in tensors.items() if k.startswith("adv.")}
    return int(state["step"])
