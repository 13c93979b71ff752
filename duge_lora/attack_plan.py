"""What the concept-recovery attack (attack.py) prompts and how it judges, on the toy model or on a real base.

The attack needs three things of a concept (Pham et al. 2023, Sec. 3; method.md, "Can an erased concept be brought
back?"): the prompts that show it (the base draws them: the attack's training images), the same prompts with the
learned word in the concept's place (what the erased model is asked to draw), and a reader that says which images
show the concept. On the toy model these are the concept's scenes, `prompt_with`, and the world's judge, exactly
as `eval` reads them. On a real base they are the request's templates (its kind's, or the `prompts` file it was
trained with; generic.py) and the judge `eval` takes: a CLIP judge reads an image as the concept when the concept's
phrase scores highest among the request's candidates (the concept, its anchor, its preserve set), a classifier
when its top-1 label is the concept's class (GenericWorld.reads_as_concept, as train's anchor check). So
`recovered` is measured as `plain` is, on the plain prompts; eval's CLIP UA also counts the stack's other targets
among the candidates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import NoJudge, UsageError, param
from .records import Request


@dataclass
class Plan:
    """One concept's attack: its prompts, the same prompts with another word, and the reader of their images."""
    concept: str
    prompts: list[str]                                  # the concept's prompts (the base draws the training images)
    with_word: Callable[[str], list[str]]               # the same prompts, `word` in the concept's place
    read: Callable[[np.ndarray, int], np.ndarray] | None  # images (P*n, H, W, 3) uint8, n per prompt -> (P*n,)
                                                        # bool; None: nothing to judge with (the inner attack)


def toy_plan(concept: str) -> Plan:
    """Every scene of the concept in the toy world, read by its judge on the concept's axis."""
    from .evaluate import default_judge
    from .toy import world
    from .toy.judge import correct

    axis = world.axis_of(concept)
    scenes = [s for s in world.all_scenes() if getattr(s, world.SLOT[axis]) == concept]

    def read(flat: np.ndarray, n: int) -> np.ndarray:
        return np.asarray(correct(default_judge(), flat, [s for s in scenes for _ in range(n)])[axis], bool)

    return Plan(concept, [s.prompt() for s in scenes], lambda w: [s.prompt_with(axis, w) for s in scenes], read)


def generic_plan(world, request: Request, judge=None) -> Plan:
    """The request's templates filled with the concept (or the word), read by `judge` as train's anchor check reads
    them (GenericWorld.reads_as_concept; without a judge the plan only prompts: the robust option's inner attack)."""
    import torch

    from .worlds.generic import fill

    templates = world.templates_of(request)
    if judge is not None and judge.kind == "classifier":
        judge.check_concepts([request.concept])

    def read(flat: np.ndarray, n: int) -> np.ndarray:
        return world.reads_as_concept(judge, request, torch.from_numpy(flat).permute(0, 3, 1, 2).float() / 255)

    return Plan(request.concept, [fill(t, request.concept) for t in templates],
                lambda w: [fill(t, w) for t in templates], read if judge is not None else None)


def request_for(world, concept: str, requests: list[Request], kind: str | None = None) -> Request:
    """The request that erased `concept` among the adapters' (its kind, templates, anchor and preserve set), else a
    new one of `kind` (guessed from the concept when not given), as `train` would make it."""
    for r in requests:
        if concept.lower() in {w.lower() for w in (r.concept, *r.synonyms)}:
            if kind is not None and kind != r.axis:
                raise UsageError(f"The adapter that erased {r.concept!r} recorded its kind as {r.axis!r}, not {kind!r}.",
                                 f"Leave {param('kind')} out: the attack uses the adapter's own prompts.", option="kind")
            return r
    return world.make_request(concept, kind=kind)


def request_plan(base, request: Request) -> Plan:
    """The prompts of a request already made (train's): the toy's scenes, or its templates; no judge needed."""
    return toy_plan(request.concept) if base.world.name == "toy" else generic_plan(base.world, request)


def plan_for(base, concept: str, requests: list[Request] = (), judge=None, kind: str | None = None) -> Plan:
    """The attack's plan on `base`: the toy world's scenes, or on a real base the request's templates and `judge`."""
    if base.world.name == "toy":
        if judge is not None:
            raise UsageError(f"{param('judge')} is for real bases; the toy model is judged by its own judge.",
                             f"Leave {param('judge')} out with the toy model.", option="judge")
        return toy_plan(base.world.make_request(concept).concept)
    if judge is None:
        raise NoJudge(f"Attacking {concept!r} on {base.name!r} needs a judge to read the attacked images: it is not "
                      "the toy model, whose world has one.",
                      f"Pass {param('judge')} with a CLIP model (e.g. openai/clip-vit-large-patch14) or an image "
                      "classifier (e.g. microsoft/resnet-50).", option="judge")
    return generic_plan(base.world, request_for(base.world, concept, list(requests), kind), judge)
