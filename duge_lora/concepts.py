"""Unlearning requests -> prompt sets: target (paired with anchor), preserve, and replay.

shared/design/method.md, "Data": the anchor set X_a is drawn from anchor prompts, the preserve
set X_r from prompts of related concepts R_k, and the replay set X_g from generic prompts plus
the earlier targets' prompts. On the toy base every default comes from the world's neighbour
structure; on other bases the user names them (default anchor: the empty prompt).
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

from .errors import DugeError
from .toy import world

# what to draw instead of an erased concept, by default (toy world): the nearest neighbour of
# the same axis, or for a character the plain shape of its head.
TOY_ANCHORS = {
    "circle": "oval", "oval": "circle", "square": "diamond", "diamond": "square", "triangle": "diamond",
    "star": "cross", "heart": "circle", "cross": "star", "mickey": "circle", "kitty": "circle", "robo": "square",
    "red": "orange", "orange": "yellow", "yellow": "orange", "green": "blue", "blue": "green", "purple": "blue",
    "solid": "outlined", "striped": "solid", "outlined": "solid",
}
GENERIC_TEMPLATES = ("{}", "a photo of {}", "a painting of {}", "an image of {}", "a drawing of {}", "a picture of {}")
GENERIC_REPLAY = ("a photo of a dog", "a city street at night", "a bowl of fruit", "a mountain landscape",
                  "a portrait of a woman", "a red car", "a cup of coffee", "a forest in autumn")


@dataclass(frozen=True)
class Request:
    """One unlearning request: erase `concept`, draw `anchor` instead, keep `preserve` intact."""
    concept: str
    anchor: str = ""
    preserve: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    axis: str | None = None          # toy world axis, None on other bases
    defaults: tuple[str, ...] = field(default=(), compare=False)   # which fields were defaulted

    def to_dict(self) -> dict:
        d = asdict(self)
        d["preserve"], d["synonyms"] = list(self.preserve), list(self.synonyms)
        d["defaults"] = list(self.defaults)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Request":
        return cls(concept=d["concept"], anchor=d.get("anchor", ""), preserve=tuple(d.get("preserve", ())),
                   synonyms=tuple(d.get("synonyms", ())), axis=d.get("axis"), defaults=tuple(d.get("defaults", ())))


def make_request(concept: str, toy_world: bool, anchor: str | None = None, preserve: list[str] | None = None,
                 synonyms: list[str] | None = None) -> Request:
    """Validate a request and fill its defaults (from the world's neighbours on the toy base)."""
    concept = " ".join(concept.split())
    if not concept:
        raise DugeError("The concept to erase is empty.", 'Name it, e.g. --concept "circle".')
    defaults = tuple(n for n, v in (("anchor", anchor), ("preserve", preserve), ("synonyms", synonyms)) if v is None)
    if not toy_world:
        return Request(concept, anchor or "", tuple(preserve or ()), tuple(synonyms or ()), None, defaults)
    _check_toy_words([concept, anchor or "", *(preserve or []), *(synonyms or [])])
    meant = {world.canonical(w) for w in concept.lower().split()}      # "Mickey Mouse" -> {"mickey"}
    word = meant.pop() if len(meant) == 1 else concept.lower()
    if word not in world.NEIGHBOURS:
        raise DugeError(f"{concept!r} is a word of the toy world but not a concept it can erase.",
                        "Erase an object, character, colour or style (see `duge-lora toy vocab`).")
    anchor = TOY_ANCHORS[word] if anchor is None else anchor
    preserve = [p for p in world.NEIGHBOURS[word] if p != anchor] + [anchor] if preserve is None else preserve
    synonyms = list(world.SYNONYMS.get(word, ())) if synonyms is None else synonyms
    return Request(word, anchor, tuple(dict.fromkeys(preserve)), tuple(synonyms), world.axis_of(word), defaults)


def _check_toy_words(phrases: list[str]) -> None:
    known = set(world.vocabulary())
    unknown = sorted({w for p in phrases for w in p.lower().split() if w not in known})
    if unknown:
        raise DugeError(f"These words are not in the toy model's vocabulary: {', '.join(unknown)}.",
                        "Run `duge-lora toy vocab` to list the words it knows.")


# ----------------------------------------------------------------------------- prompt sets
@dataclass
class PromptSets:
    """Prompts for one request. target[i] is trained toward the image of anchor[i]."""
    target: list[str]
    anchor: list[str]
    preserve: list[str]
    replay: list[str]
    keep: list[str] = field(default_factory=list)     # every other prompt whose keys/values must not move


def _scenes_with(axis: str, concept: str) -> list[world.Scene]:
    return [s for s in world.all_scenes() if getattr(s, world.SLOT[axis]) == concept]


def toy_prompt_sets(req: Request, earlier: list[Request], seed: int = 0, n_replay: int = 48) -> PromptSets:
    """Prompt sets on the toy world: every scene of the target, spelled with each synonym, paired with its anchor."""
    target, anchor = [], []
    for scene in _scenes_with(req.axis, req.concept):
        for word in (req.concept, *req.synonyms):
            target.append(scene.prompt_with(req.axis, word))
            anchor.append(scene.prompt_with(req.axis, req.anchor))
    preserve = [s.prompt() for p in req.preserve for s in _scenes_with(world.axis_of(p), world.canonical(p))]
    banned = {req.concept, *(world.canonical(p) for p in req.preserve)} | {e.concept for e in earlier}
    generic = [s.prompt() for s in world.all_scenes() if not banned & {s.subject, s.color, s.style}]
    rng = random.Random(seed)
    replay = rng.sample(generic, min(n_replay, len(generic)))
    for e in earlier:     # the earlier targets stay erased; their scenes that show this target are not replayed
        replay += [s.prompt() for s in _scenes_with(e.axis, e.concept) if getattr(s, world.SLOT[req.axis]) != req.concept]
    keep = [s.prompt() for s in world.all_scenes() if getattr(s, world.SLOT[req.axis]) != req.concept]
    return PromptSets(target, anchor, sorted(set(preserve)), replay, keep)


def generic_prompt_sets(req: Request, earlier: list[Request]) -> PromptSets:
    """Prompt sets on a real base: the concept (and synonyms) in a few templates, anchored to the same template."""
    target, anchor = [], []
    for t in GENERIC_TEMPLATES:
        for word in (req.concept, *req.synonyms):
            target.append(t.format(word))
            anchor.append(t.format(req.anchor).strip() if req.anchor else "")
    preserve = [t.format(p) for p in req.preserve for t in GENERIC_TEMPLATES]
    replay = list(GENERIC_REPLAY) + [t.format(e.concept) for e in earlier for t in GENERIC_TEMPLATES[:3]]
    return PromptSets(target, anchor, preserve, replay)


def prompt_sets(req: Request, earlier: list[Request], toy_world: bool, seed: int = 0) -> PromptSets:
    return toy_prompt_sets(req, earlier, seed) if toy_world and req.axis else generic_prompt_sets(req, earlier)
