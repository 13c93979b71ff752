"""Worlds: what a base model can be asked to forget, and how to measure it (method.md, "Data" and "Metrics").

A World owns, for one kind of base: default anchors and preserve sets (make_request), the prompt sets of a request
(target paired with anchor, preserve, replay, keep), the prompt vocabulary check, the default sampler, and the
evaluator. Two implementations: ToyWorld (the embedded toy model, whose world we render and whose judge reads
it) and GenericWorld (any other Stable Diffusion base, measured by a judge from judges/: CLIP or a classifier).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..records import Request

Progress = Callable[[int, int], None]
IMAGES_PER_PROMPT = 2          # evaluation images per prompt, by default


@dataclass
class PromptSets:
    """Prompts for one request. target[i] is trained toward the image of anchor[i]."""
    target: list[str]
    anchor: list[str]
    preserve: list[str]
    replay: list[str]
    keep: list[str] = field(default_factory=list)     # every other prompt whose keys/values must not move
    protect: list[str] = field(default_factory=list)  # earlier targets' prompts, synonyms too: kept as erased


class World(Protocol):
    """What duge-lora knows about the concepts of a base and how to measure them."""
    name: str
    has_judge: bool

    def sampler(self) -> dict:
        """Default sampler settings: guidance_scale, num_inference_steps."""

    def make_request(self, concept: str, anchor: str | None = None, preserve: list[str] | None = None,
                     synonyms: list[str] | None = None, earlier: list[Request] = (), force: bool = False,
                     kind: str | None = None, templates: tuple[str, ...] | None = None) -> Request:
        """Validate a request and fill its defaults (fields left None), given the earlier requests of the chain:
        the anchor is resolved against theta_{k-1} (never an erased concept unless forced). kind and templates
        (a `prompts` file) apply to the generic world; the toy world knows each concept's axis and prompts."""

    def prompt_sets(self, req: Request, earlier: list[Request], seed: int = 0) -> PromptSets:
        """The prompts of a request's data sets, given the earlier requests."""

    def anchor_check(self, base, req: Request, prompts: list[str], latents) -> float | None:
        """The share of theta_{k-1}'s anchor images that the world's judge reads as the target (None: no judge).
        0 is right; a high share means the anchor draws the target and the request would erase nothing."""

    def check_prompts(self, prompts: list[str]) -> None:
        """Refuse prompts the base cannot read (a CLIP tokenizer would silently mangle unknown words)."""

    def evaluate(self, base, n: int = IMAGES_PER_PROMPT, seed: int = 0, targets: list[Request] | None = None,
                 progress: Progress | None = None):
        """Generate, judge, and compute UA / UA_prev / IRA / CRA for targets (an evaluate.EvalReport)."""


def norm(text: str) -> str:
    """A concept's name as the worlds compare it: lower case, single spaces."""
    return " ".join(text.lower().split())


def drawn_as(req: Request, earlier: list[Request]) -> list[Request]:
    """The earlier requests whose prompts theta_{k-1} draws as req's concept: each earlier target's anchor,
    followed through the later requests that erased that anchor in turn (oval -> circle, then circle -> heart:
    oval now draws hearts), ends at req.concept.

    Erasing req must move them too, or the chain keeps a word that draws the concept: a dependent order (oval
    erased onto circle, then circle) would otherwise hold "oval" drawing circles through L_pp, replay, keep and
    protect, and a learned word finds it (docs/method.md, "Earlier targets that now draw the concept"). The worlds pair
    their prompts with req's anchor, as the concept's own, and leave them out of the sets that keep them."""
    out = []
    for i, e in enumerate(earlier):
        end = e.anchor
        for f in earlier[i + 1:]:
            if end and norm(f.concept) == norm(end):
                end = f.anchor
        if end and norm(end) == norm(req.concept):
            out.append(e)
    return out


def with_drawn_as(req: Request, earlier: list[Request]) -> Request:
    """req with the earlier targets that now draw its concept (drawn_as) left out of its preserve set, and a note
    that says they are erased with it."""
    from dataclasses import replace

    moved = drawn_as(req, list(earlier))
    if not moved:
        return req
    names = ", ".join(repr(e.concept) for e in moved)
    note = (f"{names} {'was' if len(moved) == 1 else 'were'} erased onto {req.concept!r} earlier and now "
            f"{'draws' if len(moved) == 1 else 'draw'} it: erased with it, onto {req.anchor!r}")
    gone = {norm(e.concept) for e in moved}
    return replace(req, preserve=tuple(p for p in req.preserve if norm(p) not in gone), notes=(*req.notes, note))


def request_start(concept: str, example: str, anchor, preserve, synonyms) -> tuple[str, tuple[str, ...]]:
    """What every world does first with a request: the concept with its spaces normalised (an empty one is a clear
    error, naming `example`), and which of anchor / preserve / synonyms are left to the world's defaults."""
    from ..errors import DugeError, UsageError, param

    concept = " ".join(concept.split())
    if not concept:
        raise DugeError("The concept to erase is empty.", f'Name it, for example {param("concept")} "{example}".',
                        option="concept")
    same = lambda text: norm(text) == norm(concept)  # noqa: E731
    if anchor is not None and same(anchor):
        raise UsageError(f"The anchor {anchor!r} is the concept to erase itself, so nothing would be erased.",
                         f"Pass an {param('anchor')} that draws something else (a neighbour, or \"\" for the empty prompt).",
                         option="anchor")
    if any(same(p) for p in preserve or ()):
        raise UsageError(f"{param('preserve')} lists {concept!r}, the concept to erase: it cannot be kept and erased.",
                         f"Leave it out of {param('preserve')}.", option="preserve")
    return concept, tuple(n for n, v in (("anchor", anchor), ("preserve", preserve), ("synonyms", synonyms)) if v is None)


def world_for(pipe) -> World:
    """The toy world for a pipeline that speaks its vocabulary at its image size, else the generic world."""
    from .generic import GenericWorld
    from .toy import TOY, is_toy_world

    return TOY if is_toy_world(pipe) else GenericWorld(pipe.tokenizer)
