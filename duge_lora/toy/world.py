"""The toy world: concepts, their neighbours and synonyms, captions, and a deterministic renderer.

Every image is one *subject* (an object or a named character) with a colour and a style,
drawn at 4x on a light background and box-downsampled to 32x32. Everything here is pure
numpy/PIL and deterministic for a given seed, so the model trained on it, the judge that
reads it and the benchmark built on it are reproducible (shared/design/toyworld.md).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 32          # output side in pixels
SCALE = 4          # supersampling factor for anti-aliased shapes
CANVAS = SIZE * SCALE

OBJECTS = ("circle", "oval", "square", "diamond", "triangle", "star", "heart", "cross")
CHARACTERS = ("mickey", "kitty", "robo")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple")
STYLES = ("solid", "striped", "outlined")
AXES = ("object", "color", "style", "character")
CONCEPTS = {"object": OBJECTS, "character": CHARACTERS, "color": COLORS, "style": STYLES}   # each axis's concepts

# which field of a Scene holds each axis
SLOT = {"object": "subject", "character": "subject", "color": "color", "style": "style"}

# near neighbours: "related non-target" concepts, the default preserve sets of a request
NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "circle": ("oval", "heart"), "oval": ("circle",), "square": ("diamond", "cross"),
    "diamond": ("square", "triangle"), "triangle": ("diamond", "star"), "star": ("cross", "triangle"),
    "heart": ("circle", "triangle"), "cross": ("star", "square"),
    "mickey": ("kitty",), "kitty": ("mickey", "robo"), "robo": ("kitty",),
    "red": ("orange", "purple"), "orange": ("red", "yellow"), "yellow": ("orange", "green"),
    "green": ("yellow", "blue"), "blue": ("green", "purple"), "purple": ("blue", "red"),
    "solid": ("outlined",), "striped": ("solid",), "outlined": ("solid",),
}
# other words for a concept: training captions use them, so erasure can be tested on them
SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("disc",), "square": ("box",), "cross": ("plus",), "star": ("pentagram",),
    "mickey": ("mouse",), "kitty": ("cat",), "robo": ("robot",),
    "purple": ("violet",), "striped": ("stripy",),
}
# generic words for a subject, in the vocabulary so that a request may name them as its anchor by hand
# (the default anchors are the neighbours in worlds/toy.py: TOY_ANCHORS)
ANCHORS: dict[str, str] = {"object": "shape", "character": "figure"}

RGB = {
    "red": (215, 35, 35), "orange": (245, 140, 25), "yellow": (235, 215, 30),
    "green": (40, 165, 55), "blue": (40, 80, 215), "purple": (135, 50, 185),
}
TEMPLATES = (
    "a {color} {style} {subject}", "a {style} {color} {subject}", "{color} {style} {subject}",
    "a picture of a {color} {style} {subject}", "a {color} {subject}", "a {style} {subject}",
    "a {subject}", "a {color} {style} {subject} drawing",
)
FILLER_WORDS = ("a", "picture", "of", "drawing", "shape", "figure")


def axis_of(concept: str) -> str:
    """Which axis a concept word (or synonym) belongs to."""
    concept = canonical(concept)
    for axis, names in CONCEPTS.items():
        if concept in names:
            return axis
    raise KeyError(concept)


def canonical(word: str) -> str:
    """Map a synonym to its concept; other words map to themselves."""
    for concept, syns in SYNONYMS.items():
        if word in syns:
            return concept
    return word


def vocabulary() -> list[str]:
    """Every word a prompt may use, sorted (the tokenizer's word list)."""
    words = set(OBJECTS + CHARACTERS + COLORS + STYLES + FILLER_WORDS)
    for syns in SYNONYMS.values():
        words.update(syns)
    for template in TEMPLATES:
        words.update(w for w in template.split() if not w.startswith("{"))
    words.update(ANCHORS.values())
    return sorted(words)


@dataclass(frozen=True)
class Scene:
    """What one image shows."""
    subject: str   # an object or a character
    color: str
    style: str

    @property
    def kind(self) -> str:
        return "character" if self.subject in CHARACTERS else "object"

    def prompt(self) -> str:
        """The canonical, fully specified prompt of this scene."""
        return f"a {self.color} {self.style} {self.subject}"

    def prompt_with(self, axis: str, word: str) -> str:
        """The canonical prompt with the word of `axis` replaced (a synonym, an anchor)."""
        fields = {"subject": self.subject, "color": self.color, "style": self.style, SLOT[axis]: word}
        return f"a {fields['color']} {fields['style']} {fields['subject']}"

    def labels(self) -> dict[str, int]:
        """Class index per judge head; 'none' is the last class of object and character."""
        return {
            "object": OBJECTS.index(self.subject) if self.kind == "object" else len(OBJECTS),
            "character": CHARACTERS.index(self.subject) if self.kind == "character" else len(CHARACTERS),
            "color": COLORS.index(self.color),
            "style": STYLES.index(self.style),
        }


def all_scenes() -> list[Scene]:
    """The world's prompts: every subject x colour x style, in a fixed order."""
    return [Scene(s, c, st) for s in OBJECTS + CHARACTERS for c in COLORS for st in STYLES]


def caption(scene: Scene, rng: random.Random, synonym_p: float = 0.3) -> str:
    """A training caption for a scene: a random template, sometimes with synonyms."""
    def word(w: str) -> str:
        syns = SYNONYMS.get(w, ())
        return rng.choice(syns) if syns and rng.random() < synonym_p else w
    template = rng.choice(TEMPLATES)
    return template.format(subject=word(scene.subject), color=word(scene.color), style=word(scene.style))


# ---------------------------------------------------------------- drawing
def _poly(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, pts) -> None:
    draw.polygon([(cx + x * r, cy + y * r) for x, y in pts], fill=255)


def _ellipse(draw, cx, cy, rx, ry) -> None:
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)


_STAR = [(math.cos(math.pi / 2 + k * math.pi / 5) * (1.0 if k % 2 == 0 else 0.45),
          -math.sin(math.pi / 2 + k * math.pi / 5) * (1.0 if k % 2 == 0 else 0.45)) for k in range(10)]
_HEART = [(0.95 * math.sin(t) ** 3,
           -(0.78 * math.cos(t) - 0.30 * math.cos(2 * t) - 0.12 * math.cos(3 * t) - 0.05 * math.cos(4 * t)) - 0.05)
          for t in np.linspace(0, 2 * math.pi, 48, endpoint=False)]
_CROSS = [(-0.33, -1), (0.33, -1), (0.33, -0.33), (1, -0.33), (1, 0.33), (0.33, 0.33), (0.33, 1),
          (-0.33, 1), (-0.33, 0.33), (-1, 0.33), (-1, -0.33), (-0.33, -0.33)]


def _draw_subject(draw: ImageDraw.ImageDraw, subject: str, cx: float, cy: float, r: float) -> None:
    """Fill the subject's silhouette (value 255) centred at (cx, cy) with radius r (canvas px)."""
    if subject == "circle":
        _ellipse(draw, cx, cy, r, r)
    elif subject == "oval":
        _ellipse(draw, cx, cy, r, 0.55 * r)
    elif subject == "square":
        _poly(draw, cx, cy, r, [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)])
    elif subject == "diamond":
        _poly(draw, cx, cy, r, [(0, -1), (1, 0), (0, 1), (-1, 0)])
    elif subject == "triangle":
        _poly(draw, cx, cy, r, [(0, -0.95), (1, 0.8), (-1, 0.8)])
    elif subject == "star":
        _poly(draw, cx, cy, r, _STAR)
    elif subject == "heart":
        _poly(draw, cx, cy, r, _HEART)
    elif subject == "cross":
        _poly(draw, cx, cy, r, _CROSS)
    elif subject == "mickey":      # round head, two round ears
        _ellipse(draw, cx, cy + 0.25 * r, 0.62 * r, 0.62 * r)
        _ellipse(draw, cx - 0.62 * r, cy - 0.55 * r, 0.36 * r, 0.36 * r)
        _ellipse(draw, cx + 0.62 * r, cy - 0.55 * r, 0.36 * r, 0.36 * r)
    elif subject == "kitty":       # round head, two pointed ears
        _ellipse(draw, cx, cy + 0.25 * r, 0.65 * r, 0.62 * r)
        _poly(draw, cx, cy, r, [(-0.65, 0.1), (-0.7, -0.95), (-0.1, -0.3)])
        _poly(draw, cx, cy, r, [(0.65, 0.1), (0.7, -0.95), (0.1, -0.3)])
    elif subject == "robo":        # square head, antenna with a ball
        _poly(draw, cx, cy, r, [(-0.62, -0.2), (0.62, -0.2), (0.62, 0.95), (-0.62, 0.95)])
        _poly(draw, cx, cy, r, [(-0.1, -0.75), (0.1, -0.75), (0.1, -0.2), (-0.1, -0.2)])
        _ellipse(draw, cx, cy - 0.78 * r, 0.24 * r, 0.24 * r)
    else:
        raise KeyError(subject)


def _erode(a: np.ndarray, k: int) -> np.ndarray:
    """Grey erosion by a (2k+1)-square, separably: min over rows, then over columns."""
    out = a.copy()
    for axis in (0, 1):
        src, padded = out, np.pad(out, [(k, k) if i == axis else (0, 0) for i in range(2)], constant_values=0)
        n = src.shape[axis]
        out = src.copy()
        for d in range(2 * k + 1):
            out = np.minimum(out, padded[d:d + n] if axis == 0 else padded[:, d:d + n])
    return out


def _style_mask(mask: Image.Image, style: str, rng: random.Random) -> np.ndarray:
    """Turn a silhouette (L image, canvas size) into the paint mask of a style, floats 0..1."""
    sil = np.asarray(mask, dtype=np.float32) / 255.0
    if style == "solid":
        return sil
    border = sil - _erode(sil, int(2.2 * SCALE))
    if style == "outlined":
        return border
    # striped: thick diagonal bands (period 8 px) inside a thin border
    thin = sil - _erode(sil, SCALE)
    yy, xx = np.mgrid[0:CANVAS, 0:CANVAS]
    period = 8 * SCALE
    bands = (((xx + yy + rng.randrange(period)) % period) < period // 2).astype(np.float32)
    return np.clip(sil * bands + thin, 0.0, 1.0)


def render(scene: Scene, seed: int) -> np.ndarray:
    """Render one scene as a (32, 32, 3) uint8 array; the same (scene, seed) gives the same pixels."""
    rng = random.Random(f"{scene.subject}|{scene.color}|{scene.style}|{seed}")
    lo, hi = (9.0, 13.0) if scene.kind == "character" else (7.0, 12.0)
    r = rng.uniform(lo, hi)
    cx, cy = rng.uniform(r + 1, SIZE - r - 1), rng.uniform(r + 1, SIZE - r - 1)
    mask = Image.new("L", (CANVAS, CANVAS), 0)
    _draw_subject(ImageDraw.Draw(mask), scene.subject, cx * SCALE, cy * SCALE, r * SCALE)
    paint = _style_mask(mask, scene.style, rng)[..., None]
    grey = rng.uniform(215, 250)
    background = np.array([grey + rng.uniform(-8, 8) for _ in range(3)], dtype=np.float32)
    colour = np.array([c + rng.uniform(-15, 15) for c in RGB[scene.color]], dtype=np.float32)
    canvas = background * (1 - paint) + colour * paint
    small = canvas.reshape(SIZE, SCALE, SIZE, SCALE, 3).mean(axis=(1, 3))
    return np.clip(small.round(), 0, 255).astype(np.uint8)


def sample_scenes(n: int, seed: int) -> list[Scene]:
    """n scenes drawn uniformly from the world, deterministic per seed."""
    rng = random.Random(seed)
    subjects, out = OBJECTS + CHARACTERS, []
    for _ in range(n):
        out.append(Scene(rng.choice(subjects), rng.choice(COLORS), rng.choice(STYLES)))
    return out


def render_batch(scenes: list[Scene], seed: int) -> np.ndarray:
    """Render scenes as a (N, 32, 32, 3) uint8 array; image i uses seed (seed, i)."""
    return np.stack([render(s, seed * 1_000_003 + i) for i, s in enumerate(scenes)])


def to_image_grid(images: np.ndarray, cols: int) -> Image.Image:
    """Tile (N, H, W, 3) uint8 images into one PIL image, row-major."""
    n, h, w, _ = images.shape
    rows = math.ceil(n / cols)
    grid = np.full((rows * h, cols * w, 3), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        grid[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = img
    return Image.fromarray(grid)
