"""What a bench measures: the sequences, methods, seeds and ablation variants, and the runs they make.

shared/design/toyworld.md, "The continual benchmark". A run is one chain of requests (a method, or a DUGE variant
of the ablation, with one seed); its requests are the sequence's, each anchor resolved against the requests
before it (chain_requests). bench.py runs them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import DugeError, param
from .losses import DEFAULT_WEIGHTS
from .worlds.toy import TOY

DEFAULT_SEQUENCE = ("circle", "red", "mickey", "star", "striped", "kitty", "triangle", "blue", "heart", "yellow")
# the second default: every request depends on an earlier one. Near neighbours are erased after each other
# (oval/circle, orange/red/yellow, kitty/robo, cross/star); circle, red, yellow, kitty and star find their default
# anchor erased (oval, orange, orange, circle, cross), and circle, yellow and star erase an earlier target's anchor.
DEPENDENT_SEQUENCE = ("oval", "circle", "orange", "red", "yellow", "kitty", "robo", "cross", "star", "outlined")
# the scale run (issue 15): 15 requests, the default sequence and five more, leaving one concept of each axis
# that is not erased (oval, robo, orange and purple, solid) so that every axis keeps prompts without a target
SCALE_SEQUENCE = DEFAULT_SEQUENCE + ("square", "green", "cross", "outlined", "diamond")
SEQUENCES = {"default": DEFAULT_SEQUENCE, "dependent": DEPENDENT_SEQUENCE, "scale": SCALE_SEQUENCE}
METHODS = ("duge", "duge-robust", "naive", "esd", "ablate", "uce", "l2sp")
ROBUST = "duge-robust"            # DUGE with the robust preset (adversarial.robust_preset): a bench method of its own
REG_TERMS = ("drift", "overlap", "replay", "keep", "protect")
# the ablation: DUGE without each of its three losses, and without each sub-term of L_reg (their weights set to 0)
ABLATIONS: dict[str, tuple[str, ...]] = {"no-ca": ("ca_attn", "ca_eps"), "no-pp": ("pp", "pp_kv"), "no-reg": REG_TERMS,
                                         **{f"no-{t}": (t,) for t in REG_TERMS}}


def effective_ablations(weights: dict = DEFAULT_WEIGHTS) -> tuple[str, ...]:
    """The variants that switch off at least one term DUGE uses by default. A variant that zeroes only terms
    whose default weight is already 0 (drift and overlap, since the 2026-11-29 bench) would be DUGE itself."""
    return tuple(v for v, terms in ABLATIONS.items() if any(weights.get(t, 0) for t in terms))


DEFAULT_ABLATION = effective_ablations()


@dataclass(frozen=True)
class BenchConfig:
    """What a bench measures. The defaults are the full benchmark; quick() the smoke-test variant."""
    methods: tuple[str, ...] = METHODS
    sequence: tuple[str, ...] = DEFAULT_SEQUENCE
    seeds: tuple[int, ...] = (0, 1, 2)
    seeded: tuple[str, ...] = ("duge", ROBUST, "uce")   # methods run with every seed; the others (and the ablation) the first
    ablation: tuple[str, ...] = DEFAULT_ABLATION   # DUGE variants, judged after the last request only
    steps: int = 100                                # training steps per request (train's default)
    max_prompts: int = 64                           # prompts per data set (anchor / preserve / replay)
    images: int = 1                                 # evaluation images per prompt
    scene_fraction: int = 1                         # judge 1/scene_fraction of the world's scenes
    base: str = "toy"
    judge: str | None = None                        # a real base's judge (judges/); the toy has its own
    device: str = "auto"                            # as in every command: a GPU when there is one
    mixed_precision: str = "auto"                   # the base's precision (models.resolve_precision)
    attack_steps: int = 150                         # the recovery attack's budget (attack.py); 0: no attack
    attack_every_step: bool = False                 # attack after every request, not only after the last

    @classmethod
    def quick(cls, **overrides) -> "BenchConfig":
        """Fewer requests, steps, data and scenes, no ablation variant: minutes instead of hours (a smoke test, not
        a result). The ablation variant it ran until the attack came (no-reg) would take it past 6 minutes here, and
        so did judging a third of the scenes once the robust preset gained the repair (6 min 4 s; now a quarter)."""
        return cls(**({"sequence": DEFAULT_SEQUENCE[:3], "steps": 40, "max_prompts": 16, "scene_fraction": 4,
                       "ablation": (), "seeds": (0,)} | overrides))

    def seeds_of(self, method: str) -> tuple[int, ...]:
        """The seeds a method's chain runs with (an ablation variant: the first)."""
        return self.seeds if method in self.seeded else self.seeds[:1]

    def used_seeds(self) -> tuple[int, ...]:
        """Every seed some run uses (the base is measured once for each)."""
        return self.seeds if set(self.methods) & set(self.seeded) else self.seeds[:1]

    @property
    def is_toy(self) -> bool:
        return self.base == "toy"

    def to_dict(self) -> dict:
        """The settings (what resuming compares); a real base's fields only where they are not the defaults, so a
        toy bench's settings read as before."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {k: v for k, v in d.items() if k not in ("judge", "device", "mixed_precision") or v != DEFAULTS[k]}

    @classmethod
    def from_dict(cls, d: dict) -> "BenchConfig":
        """The inverse of to_dict (JSON lists back to tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class Run:
    """One chain of requests: a method (or an ablation variant of DUGE) with one seed."""
    name: str
    method: str
    seed: int
    zeroed: tuple[str, ...] = ()      # DUGE loss terms switched off (the ablation)
    every_step: bool = True           # judge after every request, or only after the last
    variant: bool = False             # an ablation variant of DUGE (reported apart from the methods)

    @property
    def key(self) -> str:
        return f"{self.name}/seed-{self.seed}"

    def weights(self) -> dict | None:
        return {**DEFAULT_WEIGHTS, **{t: 0.0 for t in self.zeroed}} if self.zeroed else None


MAX_SCENE_FRACTION = 8            # 1/8 of the toy's scenes (22 of 198) still has every object, character, colour and style
DEFAULTS = {"judge": None, "device": "auto", "mixed_precision": "auto"}


def check_config(cfg: BenchConfig) -> None:
    """Refuse unknown methods, variants or concepts up front, in one sentence each."""
    from .train import METHODS as TRAINABLE

    for m in cfg.methods:
        if m not in TRAINABLE and m != ROBUST:
            raise DugeError(f"Unknown method {m!r} in {param('methods')}.", f"Choose from: {', '.join(METHODS)}.",
                           option="methods")
    for v in cfg.ablation:
        if v not in ABLATIONS:
            raise DugeError(f"Unknown ablation variant {v!r}.", f"Choose from: {', '.join(DEFAULT_ABLATION)}, or none.",
                            option="ablation")
        if v not in DEFAULT_ABLATION:
            raise DugeError(f"The ablation variant {v!r} would be DUGE itself: {' and '.join(ABLATIONS[v])} already "
                            "weigh 0 by default.", f"Choose from: {', '.join(DEFAULT_ABLATION)}, or none.",
                            option="ablation")
    if not cfg.sequence:
        raise DugeError("The sequence of requests is empty.", f"Pass {param('sequence')} circle,red,... or leave it out.",
                       option="sequence")
    if len(set(cfg.sequence)) != len(cfg.sequence):
        raise DugeError(f"A concept appears twice in {param('sequence')}.", "List each concept once.", option="sequence")
    if not cfg.methods and not cfg.ablation:
        raise DugeError("Nothing to run: no methods and no ablation.", f"Pass {param('methods')} duge (at least).",
                       option="methods")
    if cfg.judge is not None and cfg.is_toy:
        raise DugeError(f"{param('judge')} is for real bases; the toy model is measured by its own judge.",
                        f"Leave {param('judge')} out with the toy model.", option="judge")
    if cfg.judge is None and not cfg.is_toy:
        raise DugeError(f"A bench on {cfg.base!r} needs a judge: it is not the toy model, whose world has one.",
                        f"Pass {param('judge')} with a CLIP model or an image classifier.", option="judge")
    from .attack import MAX_STEPS

    if not 0 <= cfg.attack_steps <= MAX_STEPS:
        raise DugeError(f"{param('attack_steps')} {cfg.attack_steps} is outside 0..{MAX_STEPS}.",
                        f"Pass 0 (no attack) or a budget such as {BenchConfig.attack_steps}.", option="attack_steps")
    if not 1 <= cfg.scene_fraction <= MAX_SCENE_FRACTION:
        raise DugeError(f"{param('scene_fraction')} {cfg.scene_fraction} is outside 1..{MAX_SCENE_FRACTION}: judging "
                        f"fewer scenes would leave some objects or colours out.",
                        f"Pass a value from 1 (every scene) to {MAX_SCENE_FRACTION}.", option="scene_fraction")
    chain_requests(cfg.sequence, cfg.base)   # unknown words, nothing left to draw instead -> a clear DugeError


def chain_requests(sequence: tuple[str, ...], base: str = "toy") -> list:
    """The requests of a sequence with their defaults, each anchor resolved against the requests before it (on a
    real base: the generic world, each concept's kind guessed; docs/real-bases.md)."""
    from .worlds.generic import GenericWorld

    world = TOY if base == "toy" else GenericWorld()
    reqs: list = []
    for c in sequence:
        reqs.append(world.make_request(c, earlier=reqs))
    return reqs


def runs_of(cfg: BenchConfig) -> list[Run]:
    """Every chain of the bench, the longest first (so parallel workers finish together).

    A method's first seed is judged after every request (the per-step tables and curves); its other seeds, like
    the ablation variants, only after the last one (the mean and spread at the end of the chain). Judging is
    about 40% of a chain's cost, so this keeps the full bench within its time budget."""
    runs = [Run(m, m, s, every_step=(s == cfg.seeds_of(m)[0])) for m in cfg.methods for s in cfg.seeds_of(m)]
    runs += [Run(f"duge-{v}", "duge", cfg.seeds[0], ABLATIONS[v], every_step=False, variant=True) for v in cfg.ablation]
    cost = {"uce": 0, "naive": 1, "ablate": 1, "l2sp": 1, "esd": 2, "duge": 3, ROBUST: 5}
    return sorted(runs, key=lambda r: (-cost.get(r.method, 1) - r.every_step, r.key))


def eval_scenes(cfg: BenchConfig) -> list:
    """The scenes judged at each step: all of them, or a subset balanced over every axis (quick)."""
    from .toy import world

    scenes = world.all_scenes()
    if cfg.scene_fraction <= 1:
        return scenes
    subjects = world.OBJECTS + world.CHARACTERS
    return [s for s in scenes if (subjects.index(s.subject) + world.COLORS.index(s.color)
                                  + world.STYLES.index(s.style)) % cfg.scene_fraction == 0]


def probe_rows(cfg: BenchConfig) -> list[int]:
    """Scenes shown in the grids (indices into eval_scenes): one per target, then three that show no target."""
    from .toy import world

    scenes = eval_scenes(cfg)
    reqs = chain_requests(cfg.sequence)
    hit = lambda s, r: getattr(s, world.SLOT[r.axis]) == r.concept  # noqa: E731
    rows = []
    for r in reqs:
        mine = [i for i, s in enumerate(scenes) if hit(s, r) and i not in rows]
        clean = [i for i in mine if sum(hit(scenes[i], o) for o in reqs) == 1]
        rows.append((clean or mine)[0])
    free = [i for i, s in enumerate(scenes) if not any(hit(s, r) for r in reqs)]
    return rows + [free[j * len(free) // 3] for j in range(3)] if free else rows
