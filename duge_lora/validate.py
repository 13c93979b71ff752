"""Checks of settings before any work starts: one sentence per bad value, naming the parameter at fault.

Every number a user can type is checked here for range and finiteness (docs/reliability.md), so a bad value
fails in milliseconds instead of after minutes of data generation, and never as a library traceback.
"""
from __future__ import annotations

import math

from .errors import EnvironmentProblem, UsageError, param

MAX_STEPS = 1_000_000        # about 3.5 days at 0.3 s/step on an SD UNet: more is a typo
MAX_BATCH = 1024             # rows per data set per step; the data sets hold at most a few hundred prompts
MAX_PROMPTS = 100_000        # prompts per data set: each is one image the model draws before training
DEVICES = ("auto", "cpu", "cuda", "mps")


def number(name: str, value: float, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, example: str = "") -> float:
    """`value` if it is finite and within [low, high] (or (low, high] with low_open); else a UsageError."""
    hint = f"For example {param(name)} {example}." if example else ""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        raise UsageError(f"{param(name)} must be a finite number, got {value}.", hint, option=name)
    if low is not None and (value <= low if low_open else value < low):
        bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
        raise UsageError(f"{param(name)} must be {bound}, got {value:g}.", hint, option=name)
    if high is not None and value > high:
        raise UsageError(f"{param(name)} must be at most {high:g}, got {value:g}.", hint, option=name)
    return value


def loss_weights(weights: dict | None, known) -> None:
    """Loss weights: known names, finite and non-negative values."""
    for name, value in (weights or {}).items():
        if name not in known:
            raise UsageError(f"There is no loss term {name!r} to weigh.", f"Choose from: {', '.join(known)}.",
                             option="weight")
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"The loss weight {name}={value} must be a finite number >= 0.",
                             f"Write it like {param('weight')} {name}=0.5.", option="weight")


def training(cfg) -> None:
    """A TrainConfig's numbers (its names are checked by TrainConfig itself)."""
    from .losses import WEIGHT_NAMES

    number("steps", cfg.steps, low=1, high=MAX_STEPS, example="100")
    number("lr", cfg.lr, low=0, high=1, low_open=True, example="0.004")
    number("batch", cfg.batch, low=1, high=MAX_BATCH, example="8")
    number("seed", cfg.seed, low=0, high=2**63 - 1, example="0")
    number("checkpoint_every", cfg.checkpoint_every, low=0, example="50")
    number("max_prompts", cfg.max_prompts, low=1, high=MAX_PROMPTS, example="64")
    loss_weights(cfg.weights, WEIGHT_NAMES)


def rank_fits(rank: int, dims: list[tuple[int, int]]) -> None:
    """A LoRA rank no larger than the smallest side of the projections it adapts (else B A cannot have it)."""
    limit = min(min(d) for d in dims) if dims else None
    if limit is not None and rank > limit:
        raise UsageError(f"{param('rank')} {rank} is larger than the adapted projections allow ({limit}).",
                         f"Use a {param('rank')} between 1 and {limit}; 4 to 16 is usual.", option="rank")


def device(name: str) -> str:
    """'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', and only a device this machine has."""
    import torch

    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and not index.isdigit()) or (index and kind != "cuda"):
        raise UsageError(f"Unknown {param('device')} {name!r}.", "Use auto, cpu or cuda (cuda:1 for the second GPU).",
                         option="device")
    if kind == "cuda" and not torch.cuda.is_available():
        raise EnvironmentProblem(f"{param('device')} {name} was asked for, but this machine has no usable CUDA GPU.",
                                 f"Use {param('device')} cpu (or auto), or run on a machine with a GPU.", option="device")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise EnvironmentProblem(f"There is no GPU {name} on this machine ({torch.cuda.device_count()} found).",
                                 f"Use {param('device')} cuda:0.", option="device")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise EnvironmentProblem(f"{param('device')} mps was asked for, but this machine has no Apple GPU.",
                                 f"Use {param('device')} cpu.", option="device")
    return name
