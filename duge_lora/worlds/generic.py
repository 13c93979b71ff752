"""The generic world: any Stable Diffusion base that is not the toy model (method.md, "Data").

A request names its own anchor (default: the empty prompt) and preserve set; prompt sets put the concept, its
synonyms and the preserve concepts into a few templates, and replay a small set of unrelated prompts plus the
earlier targets. No judge yet: measuring erasure on real bases (CLIP zero-shot, image classifiers) is the later
judges/ piece, so evaluate() says so in one sentence.
"""
from __future__ import annotations

from ..errors import DugeError, NoJudge, param
from ..records import Request
from . import IMAGES_PER_PROMPT, PromptSets, request_start

TEMPLATES = ("{}", "a photo of {}", "a painting of {}", "an image of {}", "a drawing of {}", "a picture of {}")
REPLAY = ("a photo of a dog", "a city street at night", "a bowl of fruit", "a mountain landscape",
          "a portrait of a woman", "a red car", "a cup of coffee", "a forest in autumn")
SAMPLER = {"guidance_scale": 7.5, "num_inference_steps": 50}      # diffusers' StableDiffusionPipeline defaults


class GenericWorld:
    """The World of any other base: templates, user-given anchors and preserve sets, no judge (yet)."""
    name = "generic"
    has_judge = False

    def sampler(self) -> dict:
        return dict(SAMPLER)

    def make_request(self, concept: str, anchor: str | None = None, preserve: list[str] | None = None,
                     synonyms: list[str] | None = None, earlier: list[Request] = (), force: bool = False) -> Request:
        """A request as given (default anchor: the empty prompt); an anchor that an earlier request erased is
        refused unless forced (its prompt no longer draws it)."""
        concept, defaults = request_start(concept, "Snoopy", anchor, preserve, synonyms)
        erased = {e.concept.lower() for e in earlier} | {s.lower() for e in earlier for s in e.synonyms}
        notes = ()
        if anchor and anchor.lower() in erased:
            if not force:
                raise DugeError(f"The anchor {anchor!r} was erased by an earlier request, so the model no longer draws it.",
                                f"Choose another {param('anchor')}, or pass {param('force')} to use it anyway.", option="anchor")
            notes = (f"the anchor {anchor!r} was erased earlier; used anyway (forced)",)
        return Request(concept, anchor or "", tuple(preserve or ()), tuple(synonyms or ()), None, defaults, notes)

    def prompt_sets(self, req: Request, earlier: list[Request], seed: int = 0) -> PromptSets:
        """The concept (and synonyms) in each template, anchored to the same template."""
        target, anchor = [], []
        for t in TEMPLATES:
            for word in (req.concept, *req.synonyms):
                target.append(t.format(word))
                anchor.append(t.format(req.anchor).strip() if req.anchor else "")
        preserve = [t.format(p) for p in req.preserve for t in TEMPLATES]
        replay = list(REPLAY) + [t.format(e.concept) for e in earlier for t in TEMPLATES[:3]]
        return PromptSets(target, anchor, preserve, replay)

    def anchor_check(self, base, req: Request, prompts: list[str], latents) -> float | None:
        return None                                    # no judge on a generic base (yet)

    def check_prompts(self, prompts: list[str]) -> None:
        """Any words: a real base's tokenizer reads them."""

    def evaluate(self, base, n: int = IMAGES_PER_PROMPT, seed: int = 0, targets: list[Request] | None = None, progress=None):
        raise NoJudge(f"`eval` measures with the toy world's judge, but the base {base.name!r} is not a toy-world model.",
                      f"Use {param('base')} toy (or a model composed from it).", option="base")
