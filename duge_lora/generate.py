"""Generate images for prompts with a base pipeline, reproducibly, and tile them into grids."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .models import Base

Progress = Callable[[int, int], None]


def image_seed(seed: int, prompt_index: int, image_index: int) -> int:
    """The seed of one image: independent of batch size, so results do not depend on batching."""
    return seed * 1_000_003 + prompt_index * 1009 + image_index


@torch.no_grad()
def generate(base: Base, prompts: list[str], n: int, seed: int = 0, *, guidance_scale: float | None = None,
             num_inference_steps: int | None = None, batch_size: int | None = None,
             progress: Progress | None = None, output_type: str = "np"):
    """Images for every prompt, (P, n, H, W, 3) uint8; image j of prompt i uses image_seed(seed, i, j).

    With output_type="latent": the final (scaled) latents instead, a (P, n, C, h, w) float tensor. batch_size:
    images per pipeline call (default: base.gen_batch, else sized to the free memory, memory.generation_batch).
    """
    from .memory import generation_batch

    batch_size = generation_batch(base.pipe, base.device, batch_size or getattr(base, "gen_batch", None))
    g = base.sampler["guidance_scale"] if guidance_scale is None else guidance_scale
    steps = base.sampler["num_inference_steps"] if num_inference_steps is None else num_inference_steps
    jobs = [(i, j) for i in range(len(prompts)) for j in range(n)]
    out: list[np.ndarray] = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        gens = [torch.Generator(device="cpu").manual_seed(image_seed(seed, i, j)) for i, j in chunk]
        latents = torch.stack([torch.randn(_latent_shape(base), generator=gen) for gen in gens])
        images = base.pipe([prompts[i] for i, _ in chunk], num_inference_steps=steps, guidance_scale=g,
                           latents=latents.to(base.device, base.pipe.unet.dtype), output_type=output_type).images
        if output_type == "latent":
            out.append(images.float().cpu())
        else:
            out.append((np.clip(images, 0, 1) * 255).round().astype(np.uint8))
        if progress:
            progress(min(start + batch_size, len(jobs)), len(jobs))
    images = torch.cat(out) if output_type == "latent" else np.concatenate(out)
    return images.reshape(len(prompts), n, *images.shape[1:])


@torch.no_grad()
def decode(base: Base, latents: torch.Tensor) -> np.ndarray:
    """Images (N, H, W, 3) uint8 of scaled latents (N, C, h, w), through the base's VAE."""
    vae = base.pipe.vae
    x = vae.decode(latents.to(base.device, vae.dtype) / vae.config.scaling_factor).sample.float()
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def _latent_shape(base: Base) -> tuple[int, int, int]:
    unet = base.pipe.unet
    return (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)


def grid(images: np.ndarray, row_labels: list[str] | None = None, min_cell: int = 96,
         col_labels: list[str] | None = None) -> Image.Image:
    """Tile (rows, cols, H, W, 3) images (rows = prompts) with the row's prompt on its left and column titles on top."""
    rows, cols, h, w, _ = images.shape
    scale = max(1, math.ceil(min_cell / h))
    ch, cw = h * scale, w * scale
    font = ImageFont.load_default(size=max(12, ch // 7))
    label_w = 0
    if row_labels:
        label_w = 12 + max(int(font.getlength(t)) for t in row_labels)
    top = (ch // 4 + 8) if col_labels else 0
    canvas = Image.new("RGB", (label_w + cols * (cw + 4) + 4, top + rows * (ch + 4) + 4), "white")
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(col_labels or []):
        draw.text((label_w + 4 + c * (cw + 4) + cw // 2, top // 2 + 2), text, fill="black", font=font, anchor="mm")
    for r in range(rows):
        y = top + 4 + r * (ch + 4)
        if row_labels:
            draw.text((6, y + ch // 2), row_labels[r], fill="black", font=font, anchor="lm")
        for c in range(cols):
            tile = Image.fromarray(images[r, c]).resize((cw, ch), Image.NEAREST)
            canvas.paste(tile, (label_w + 4 + c * (cw + 4), y))
    return canvas


def side_by_side(left: Image.Image, right: Image.Image, titles: tuple[str, str], gap: int = 24) -> Image.Image:
    """Two grids next to each other under titles (e.g. before / after an adapter)."""
    font = ImageFont.load_default(size=16)
    top = 28
    canvas = Image.new("RGB", (left.width + gap + right.width, top + max(left.height, right.height)), "white")
    canvas.paste(left, (0, top))
    canvas.paste(right, (left.width + gap, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((left.width // 2, 4), titles[0], fill="black", font=font, anchor="mt")
    draw.text((left.width + gap + right.width // 2, 4), titles[1], fill="black", font=font, anchor="mt")
    return canvas
