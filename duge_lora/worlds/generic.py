"""The generic world: any Stable Diffusion base that is not the toy model (method.md, "Data"; docs/real-bases.md).

A concept has a kind: object, style (an artist), character, likeness (a real person) or nsfw, given with `kind`
or guessed from a small built-in list (kinds.py). The kind decides the prompt templates ("a painting by {}"),
the default anchor (what theta_k draws instead: "a cartoon character" for a character) and the default preserve
set (related concepts the prior-preservation loss keeps). A `prompts` file replaces the templates. The data roles
are the toy world's, so the DUGE losses are unchanged: target prompts paired with the same template filled with
the anchor; preserve prompts; replay (everyday prompts, and the earlier targets' prompts kept erased); keep (every
prompt whose keys and values must not move); protect (the earlier targets' prompts).

Measuring needs a judge on a real base (judges/: CLIP zero-shot or an ImageNet classifier); evaluate() is
generic_eval.evaluate with the judge the caller loaded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BadInput, DugeError, NoJudge, UsageError, param
from ..records import Request
from . import IMAGES_PER_PROMPT, PromptSets, drawn_as, norm, request_start, with_drawn_as
from .kinds import DEFAULT_ANCHOR, DEFAULT_PRESERVE, JUDGE_PHRASE, KINDS, TEMPLATES, guess_kind

REPLAY = ("a photo of a dog", "a city street at night", "a bowl of fruit", "a mountain landscape",
          "a portrait of a woman", "a red car", "a cup of coffee", "a forest in autumn", "a beach at sunset",
          "a cat sleeping on a sofa", "a bicycle leaning on a wall", "a plate of pasta")
KEEP = REPLAY + ("a photo of a man", "a living room", "a bird on a branch", "a glass of water", "a house with a garden",
                 "a painting of flowers", "a cartoon of a dog", "a child playing", "an airplane in the sky", "a book")
SAMPLER = {"guidance_scale": 7.5, "num_inference_steps": 50}      # diffusers' StableDiffusionPipeline defaults
MANY_PIECES = 3                 # tokens per word above which a concept is probably not a word the base knows


def fill(template: str, word: str) -> str:
    """A template with `word` in its {} (an empty word leaves no double space or dangling comma)."""
    return " ".join(template.format(word).split()).strip(" ,")


def read_prompts(path: str | Path) -> tuple[str, ...]:
    """A prompts file: one template per line with {} where the concept goes; blank lines and # comments skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BadInput(f"The prompts file {path} does not exist.", f"Pass a text file to {param('prompts')}.") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise BadInput(f"The prompts file {path} is not a UTF-8 text file.",
                       "Write one prompt per line, with {} where the concept goes.") from None
    prompts = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not prompts:
        raise BadInput(f"The prompts file {path} has no prompts.", "Write one prompt per line, with {} where the concept goes.")
    missing = [p for p in prompts if p.count("{}") != 1 or "{" in p.replace("{}", "")]
    if missing:
        raise BadInput(f"The prompt {missing[0]!r} in {path} has no {{}} (or more than one, or other braces), so the "
                       "concept has no place in it.", 'Write it like "a photo of {} on a table".')
    return tuple(dict.fromkeys(prompts))


class GenericWorld:
    """The World of any other base: kinds, templates, default anchors and preserve sets; judged by judges/."""
    name = "generic"
    has_judge = False                  # no built-in judge: eval and bench take one with `judge`

    def __init__(self, tokenizer=None, judge=None):
        self.tokenizer = tokenizer
        self.judge = judge             # a judges.Judge, when the caller has one: train checks its anchor with it

    def sampler(self) -> dict:
        return dict(SAMPLER)

    def make_request(self, concept: str, anchor: str | None = None, preserve: list[str] | None = None,
                     synonyms: list[str] | None = None, earlier: list[Request] = (), force: bool = False,
                     kind: str | None = None, templates: tuple[str, ...] | None = None) -> Request:
        """A request with the kind's defaults filled in: anchor and preserve set from the kind (kinds.py), the
        kind guessed when not given. An anchor that an earlier request erased is refused unless forced (its
        prompt no longer draws it), and a default anchor that was erased is too (name another)."""
        concept, defaults = request_start(concept, "Snoopy", anchor, preserve, synonyms)
        notes: list[str] = []
        if kind is None:
            kind, why = guess_kind(concept)
            defaults += ("kind",)
            notes.append(f"kind: {kind} ({why}); pass {param('kind')} to choose another")
        elif kind not in KINDS:
            raise UsageError(f"Unknown kind {kind!r}.", f"Choose one of: {', '.join(KINDS)}.", option="kind")
        erased = {e.concept.lower() for e in earlier} | {s.lower() for e in earlier for s in e.synonyms}
        if anchor is None:
            anchor = DEFAULT_ANCHOR[kind]
            if anchor.lower() in erased:
                raise DugeError(f"The default anchor {anchor!r} of a {kind} was erased by an earlier request.",
                                f"Name what to draw instead with {param('anchor')}.", option="anchor")
        elif anchor.lower() in erased:
            if not force:
                raise DugeError(f"The anchor {anchor!r} was erased by an earlier request, so the model no longer draws it.",
                                f"Choose another {param('anchor')}, or pass {param('force')} to use it anyway.", option="anchor")
            notes.append(f"the anchor {anchor!r} was erased earlier; used anyway (forced)")
        if preserve is None:
            preserve = [p for p in DEFAULT_PRESERVE[kind] if p.lower() != concept.lower()]
        notes += self._token_warnings([concept, *(synonyms or ())])
        req = Request(concept, anchor, tuple(dict.fromkeys(preserve)), tuple(synonyms or ()), kind, defaults,
                      tuple(notes), tuple(templates or ()))
        return with_drawn_as(req, earlier)

    def _token_warnings(self, words: list[str]) -> list[str]:
        """A concept the tokenizer splits into many pieces is probably unknown to the base (warn, do not refuse)."""
        if self.tokenizer is None:
            return []
        out = []
        for w in words:
            pieces = self.tokenizer.tokenize(w)
            if len(pieces) > MANY_PIECES * max(1, len(w.split())):
                out.append(f"warning: the tokenizer splits {w!r} into {len(pieces)} pieces, so the base may not know "
                           "it as a word; check that the base draws it (duge-lora sample) before erasing it")
        return out

    @staticmethod
    def templates_of(req: Request) -> tuple[str, ...]:
        return req.templates or TEMPLATES[req.axis or "object"]

    def prompt_sets(self, req: Request, earlier: list[Request], seed: int = 0) -> PromptSets:
        """Each template filled with the concept (and synonyms), paired with the same template filled with the
        anchor (the empty anchor: the template without the concept, as Concept Ablation's empty anchor). The earlier
        targets that theta_{k-1} draws as this concept (worlds.drawn_as) are erased with it, onto the same anchor,
        and are neither preserved, replayed nor protected."""
        moved = drawn_as(req, earlier)
        gone = {norm(e.concept) for e in moved}
        stay = [e for e in earlier if norm(e.concept) not in gone]
        target, anchor = [], []
        for e in (req, *moved):
            for t in self.templates_of(e):
                for word in (e.concept, *e.synonyms):
                    target.append(fill(t, word))
                    anchor.append(fill(t, req.anchor))
        templates = self.templates_of(req)
        preserve = [fill(t, p) for p in req.preserve if norm(p) not in gone for t in templates]
        earlier_prompts = [fill(t, w) for e in stay for t in self.templates_of(e) for w in (e.concept, *e.synonyms)]
        replay = list(REPLAY) + [fill(t, e.concept) for e in stay for t in self.templates_of(e)]
        keep = sorted(set(KEEP) | set(preserve))
        return PromptSets(target, anchor, preserve, replay, keep, sorted(set(earlier_prompts)))

    def judge_candidates(self, req: Request) -> dict[str, str]:
        """What a CLIP judge chooses among for a request's images: concept -> the phrase it is judged by."""
        phrase = JUDGE_PHRASE[req.axis or "object"]
        names = [req.concept, req.anchor or "something else", *req.preserve]
        return {n: phrase.format(n) for n in dict.fromkeys(names)}

    def anchor_check(self, base, req: Request, prompts: list[str], latents, n: int = 16) -> float | None:
        """With a judge: the share of (up to n of) theta_{k-1}'s anchor images it reads as the target (a CLIP judge
        among the request's candidates, a classifier by its top-1 class); None without one."""
        import torch

        from ..generate import decode

        if self.judge is None or not len(latents):
            return None
        if self.judge.kind == "classifier" and not self.judge.has_concept(req.concept):
            return None
        images = torch.from_numpy(decode(base, latents[:n])).permute(0, 3, 1, 2).float() / 255
        return float(self.reads_as_concept(self.judge, req, images).mean())

    def reads_as_concept(self, judge, req: Request, images) -> np.ndarray:
        """(N,) True where `judge` reads an image (N, 3, H, W) in [0, 1] as the request's concept: a CLIP judge
        among the request's candidates (judge_candidates), a classifier by its top-1 class."""
        if judge.kind == "classifier":
            return np.array([judge.matches(label, req.concept) for label in judge.predict(images, [])], bool)
        cands = self.judge_candidates(req)
        return np.array([g == cands[req.concept] for g in judge.predict(images, list(cands.values()))], bool)

    def check_prompts(self, prompts: list[str]) -> None:
        """Any words: a real base's tokenizer reads them."""

    def evaluate(self, base, n: int = IMAGES_PER_PROMPT, seed: int = 0, targets: list[Request] | None = None, progress=None,
                 judge=None):
        if judge is None:
            raise NoJudge(f"Measuring erasure on {base.name!r} needs a judge: it is not the toy model, whose world has one.",
                          f"Pass {param('judge')} with a CLIP model (e.g. openai/clip-vit-large-patch14) or an image "
                          "classifier (e.g. microsoft/resnet-50).", option="judge")
        from ..generic_eval import evaluate

        return evaluate(base, judge, targets or [], n=n, seed=seed, progress=progress)
