"""The toy world (shared/design/toyworld.md): requests, prompt sets and measurement for the embedded toy model.

Every default comes from the world's neighbour structure (toy/world.py): the anchor is the nearest neighbour of
the same axis (a character's: the plain shape of its head), the preserve set the neighbours. The prompt sets
cover every scene of the target spelled with each synonym (method.md, "Data"); the evaluator is the toy judge
(evaluate.py).
"""
from __future__ import annotations

import json
import random

from ..errors import DugeError, UnknownWords, UsageError, param
from ..records import Request
from ..toy import world
from . import IMAGES_PER_PROMPT, PromptSets, drawn_as, request_start, with_drawn_as

# what to draw instead of an erased concept, by default: the nearest neighbour of the same axis, or for a
# character the plain shape of its head.
TOY_ANCHORS = {
    "circle": "oval", "oval": "circle", "square": "diamond", "diamond": "square", "triangle": "diamond",
    "star": "cross", "heart": "circle", "cross": "star", "mickey": "circle", "kitty": "circle", "robo": "square",
    "red": "orange", "orange": "yellow", "yellow": "orange", "green": "blue", "blue": "green", "purple": "blue",
    "solid": "outlined", "striped": "solid", "outlined": "solid",
}
N_REPLAY = 48                        # generic scenes replayed per request (plus the earlier targets' scenes)


def is_toy_world(pipe) -> bool:
    """True when the pipeline draws 32x32 images and its tokenizer holds every toy word as one token."""
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    vocab = pipe.tokenizer.get_vocab()
    return size == world.SIZE and all(f"{w}</w>" in vocab for w in world.vocabulary())


def _scenes_with(axis: str, concept: str) -> list[world.Scene]:
    return [s for s in world.all_scenes() if getattr(s, world.SLOT[axis]) == concept]


def _check_words(phrases: list[str]) -> None:
    known = set(world.vocabulary())
    unknown = sorted({w for p in phrases for w in p.lower().split() if w not in known})
    if unknown:
        raise UsageError(f"These words are not in the toy model's vocabulary: {', '.join(unknown)}.",
                         "Run `duge-lora toy vocab` to list the words it knows.")


def anchor_candidates(word: str) -> list[str]:
    """Anchors for erasing `word`, best first: its default anchor and its own neighbours, then breadth-first through
    the neighbour graph, then every other concept; all of the default anchor's axis (a character's anchors are
    plain shapes)."""
    start = TOY_ANCHORS[word]
    axis = world.axis_of(start)
    order, queue = [], [start, *world.NEIGHBOURS[word]]
    while queue:
        c = queue.pop(0)
        if c not in order and c != word and world.axis_of(c) == axis:
            order.append(c)
            queue += list(world.NEIGHBOURS.get(c, ()))
    same = world.CONCEPTS[axis]
    return order + [c for c in same if c not in order and c != word]


def resolve_anchor(word: str, anchor: str | None, erased: set[str], force: bool = False) -> tuple[str, tuple[str, ...]]:
    """The anchor of a request against theta_{k-1} (method.md, "Anchors along a chain"): an erased concept no longer
    draws itself (its prompt draws its own anchor, possibly the target), so the default skips erased concepts and
    says so; an explicit erased anchor is refused unless forced. Returns (anchor, notes)."""
    if anchor is not None:
        if world.canonical(anchor) in erased and not force:
            raise DugeError(f"The anchor {anchor!r} was erased by an earlier request, so the model no longer draws it "
                            f"(its prompt draws what replaced it, possibly {word!r} itself).",
                            f"Choose another {param('anchor')}, leave it out for the nearest one that is not erased, "
                            f"or pass {param('force')} to use it anyway.", option="anchor")
        note = (f"the anchor {anchor!r} was erased earlier; used anyway (forced)",) if world.canonical(anchor) in erased else ()
        return anchor, note
    free = [c for c in anchor_candidates(word) if c not in erased]
    if not free:
        raise DugeError(f"Every concept that could stand in for {word!r} has been erased by earlier requests.",
                        f"Name what to draw instead with {param('anchor')}.", option="anchor")
    default = TOY_ANCHORS[word]
    if free[0] == default:
        return default, ()
    return free[0], (f"the default anchor {default!r} was erased by an earlier request; drawing {free[0]!r} instead",)


def _scene_of(prompt: str, axis: str, concept: str) -> world.Scene:
    """The scene of a canonical prompt ("a red striped oval"), with the word of `axis` replaced by `concept`."""
    _, color, style, subject = prompt.split()
    fields = {"subject": subject, "color": color, "style": style} | {world.SLOT[axis]: concept}
    return world.Scene(**fields)


class ToyWorld:
    """The World of the embedded toy model: shapes, colours, styles and three named characters."""
    name = "toy"
    has_judge = True

    def sampler(self) -> dict:
        """The toy model's default sampler settings, recorded by its build."""
        from .. import toy
        from ..toy.build import BuildConfig as B

        report = json.loads(toy.BUILD_REPORT.read_text()) if toy.BUILD_REPORT.exists() else {}
        return dict(report.get("sampler", {"guidance_scale": B.guidance_scale, "num_inference_steps": B.num_inference_steps}))

    def make_request(self, concept: str, anchor: str | None = None, preserve: list[str] | None = None,
                     synonyms: list[str] | None = None, earlier: list[Request] = (), force: bool = False,
                     kind: str | None = None, templates: tuple[str, ...] | None = None) -> Request:
        """Validate a request and fill its defaults from the world's neighbours ("Mickey Mouse" -> mickey), with
        the anchor resolved against theta_{k-1}: never a concept an earlier request erased (resolve_anchor)."""
        if kind is not None or templates:
            what = param("kind") if kind is not None else param("prompts")
            raise UsageError(f"{what} applies to real bases; the toy world knows each concept's axis and draws every "
                             "scene of it.", f"Leave {what} out with the toy model.", option="kind" if kind is not None else "prompts")
        concept, defaults = request_start(concept, "circle", anchor, preserve, synonyms)
        _check_words([concept, anchor or "", *(preserve or []), *(synonyms or [])])
        meant = {world.canonical(w) for w in concept.lower().split()}
        word = meant.pop() if len(meant) == 1 else concept.lower()
        if word not in world.NEIGHBOURS:
            raise UsageError(f"{concept!r} is a word of the toy world but not a concept it can erase.",
                             "Erase an object, character, colour or style (see `duge-lora toy vocab`).", option="concept")
        if anchor and world.canonical(anchor.strip().lower()) == word:
            raise UsageError(f"The anchor {anchor!r} means {word!r}, the concept to erase, so nothing would be erased.",
                             f"Pass another {param('anchor')}, or leave it out for the default.", option="anchor")
        if any(world.canonical(p.strip().lower()) == word for p in preserve or ()):
            raise UsageError(f"{param('preserve')} lists a word for {word!r}, the concept to erase.",
                             f"Leave it out of {param('preserve')}.", option="preserve")
        erased = {e.concept for e in earlier}
        anchor, notes = resolve_anchor(word, anchor, erased, force)
        if preserve is None:         # erased neighbours stay: preserving theta_{k-1} there keeps them erased
            preserve = [p for p in world.NEIGHBOURS[word] if p != anchor] + [anchor]
        synonyms = list(world.SYNONYMS.get(word, ())) if synonyms is None else synonyms
        req = Request(word, anchor, tuple(dict.fromkeys(preserve)), tuple(synonyms), world.axis_of(word), defaults, notes)
        return with_drawn_as(req, earlier)

    def prompt_sets(self, req: Request, earlier: list[Request], seed: int = 0) -> PromptSets:
        """Every scene of the target, spelled with each synonym, paired with its anchor; preserve, replay, keep.
        The earlier targets that theta_{k-1} draws as this concept (worlds.drawn_as) are erased with it, onto the
        same anchor, and left out of every set that keeps prompts where they are."""
        moved = drawn_as(req, earlier)
        gone = {req.concept} | {e.concept for e in moved}
        stay = [e for e in earlier if e.concept not in gone]
        target, anchor = [], []
        for e in (req, *moved):                        # same axis: each anchor chain stays on its axis
            for scene in _scenes_with(e.axis, e.concept):
                for word in (e.concept, *e.synonyms):
                    target.append(scene.prompt_with(e.axis, word))
                    anchor.append(scene.prompt_with(e.axis, req.anchor))
        preserve = [s.prompt() for p in req.preserve if world.canonical(p) not in gone
                    for s in _scenes_with(world.axis_of(p), world.canonical(p))]
        banned = {req.concept, *(world.canonical(p) for p in req.preserve)} | {e.concept for e in earlier}
        generic = [s.prompt() for s in world.all_scenes() if not banned & {s.subject, s.color, s.style}]
        replay = random.Random(seed).sample(generic, min(N_REPLAY, len(generic)))
        slot = world.SLOT[req.axis]
        for e in stay:        # the earlier targets stay erased; their scenes that show this target are not replayed
            replay += [s.prompt() for s in _scenes_with(e.axis, e.concept) if getattr(s, slot) not in gone]
        keep = [s.prompt() for s in world.all_scenes() if getattr(s, slot) not in gone]
        protect = [s.prompt_with(e.axis, w) for e in stay for s in _scenes_with(e.axis, e.concept)
                   if getattr(s, slot) not in gone for w in (e.concept, *e.synonyms)]
        return PromptSets(target, anchor, sorted(set(preserve)), replay, keep, sorted(set(protect)))

    def anchor_check(self, base, req: Request, prompts: list[str], latents, n: int = 16) -> float | None:
        """The toy judge on (up to n of) the anchor images theta_{k-1} drew: the share it reads as the target."""
        from ..evaluate import default_judge
        from ..generate import decode
        from ..toy.judge import correct

        if not prompts or not len(latents):
            return None
        scenes = [_scene_of(p, req.axis, req.concept) for p in prompts[:n]]
        return float(correct(default_judge(), decode(base, latents[:n]), scenes)[req.axis].mean())

    def check_prompts(self, prompts: list[str]) -> None:
        """Refuse prompts with words outside the toy vocabulary."""
        known = set(world.vocabulary())
        for prompt in prompts:
            unknown = [w for w in prompt.lower().split() if w not in known]
            if prompt.strip() and unknown:
                raise UnknownWords(unknown, prompt)

    def evaluate(self, base, n: int = IMAGES_PER_PROMPT, seed: int = 0, targets: list[Request] | None = None, progress=None):
        """The toy judge's verdicts on n images per evaluation prompt, and the metrics (evaluate.py)."""
        from ..evaluate import evaluate

        return evaluate(base, n=n, seed=seed, targets=targets, progress=progress)


TOY = ToyWorld()
