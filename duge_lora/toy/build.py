"""Train the embedded toy model and its judge from scratch: `duge-lora toy build`.

Stages (each cached in a work folder, so an interrupted build resumes at the stage it was in):
  1. data  - render the training and held-out sets of the world (world.py);
  2. judge - the per-axis CNN classifier (judge.py);
  3. vae   - an AutoencoderKL, factor 4 (32x32x3 -> 8x8x4), latents scaled to unit variance;
  4. unet  - a UNet2DConditionModel with SD's module names and a CLIPTextModel, trained jointly
             with the DDPM epsilon objective (Ho et al. 2020, eq. 14), 10% empty captions for
             classifier-free guidance, EMA weights;
  5. save  - a diffusers StableDiffusionPipeline folder (DDIM sampler) + the judge.
Seeded and deterministic on one machine. Nothing here prints: progress goes to a callback.
"""
from __future__ import annotations

import json
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import world
from .judge import CLASSES, Judge, accuracy as judge_accuracy, labels_of, save_judge, to_tensor
from .tokenizer import write_tokenizer
from ..io import atomic_path

Progress = Callable[[str, int, int, dict], None]


@dataclass(frozen=True)
class BuildConfig:
    seed: int = 0
    n_train: int = 48_000
    n_heldout: int = 4_000
    judge_steps: int = 900
    judge_batch: int = 128
    vae_steps: int = 1_100
    vae_batch: int = 64
    unet_steps: int = 3_500
    unet_batch: int = 64
    unet_lr: float = 1e-3
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    guidance_scale: float = 3.0      # sampler defaults written into the pipeline folder
    num_inference_steps: int = 20


def _noop(stage: str, step: int, total: int, info: dict) -> None:
    pass


# ------------------------------------------------------------------ configs of the three models
def unet_config() -> dict:
    return dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                block_out_channels=(64, 128), down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=64,
                attention_head_dim=8, norm_num_groups=32)


def vae_config() -> dict:
    return dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 64),
                down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                layers_per_block=1, norm_num_groups=16, sample_size=32)


def text_config(vocab_size: int, bos: int, eos: int) -> dict:
    return dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=16, projection_dim=64,
                bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)


def noise_schedule() -> dict:
    return dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon")


# ------------------------------------------------------------------ stage 1: data
def _render_chunk(args: tuple[list[world.Scene], int]) -> np.ndarray:
    scenes, seed = args
    return world.render_batch(scenes, seed)


def render_set(n: int, seed: int, workers: int | None = None) -> tuple[np.ndarray, list[world.Scene]]:
    """n scenes and their renders, split over processes in fixed chunks (same result for any worker count)."""
    scenes = world.sample_scenes(n, seed)
    chunk = 2000
    jobs = [(scenes[i:i + chunk], seed * 7919 + i // chunk) for i in range(0, n, chunk)]
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        images = np.concatenate(list(pool.map(_render_chunk, jobs)))
    return images, scenes


# ------------------------------------------------------------------ stage 2: judge
def train_judge(images: np.ndarray, scenes: list[world.Scene], cfg: BuildConfig, progress: Progress) -> Judge:
    """Cross-entropy on every head; light noise/contrast augmentation so it reads generations too."""
    torch.manual_seed(cfg.seed)
    judge, labels, x_all = Judge(), labels_of(scenes), to_tensor(images)
    opt = torch.optim.AdamW(judge.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=cfg.judge_steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    judge.train()
    for step in range(cfg.judge_steps):
        idx = torch.randint(0, len(x_all), (cfg.judge_batch,), generator=gen)
        x = x_all[idx]
        x = x * (1 + 0.1 * torch.randn(len(x), 1, 1, 1, generator=gen)) + 0.06 * torch.rand(len(x), 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
        logits = judge(x)
        loss = sum(F.cross_entropy(logits[a], labels[a][idx]) for a in world.AXES)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        progress("judge", step + 1, cfg.judge_steps, {"loss": loss.item()})
    return judge.eval()


# ------------------------------------------------------------------ stage 3: VAE
def train_vae(images: np.ndarray, cfg: BuildConfig, progress: Progress):
    """AutoencoderKL with MSE + L1 reconstruction and a small KL term (Kingma & Welling 2014)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(cfg.seed + 1)
    vae, x_all = AutoencoderKL(**vae_config()), to_tensor(images)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=cfg.vae_steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    latent_elems = 4 * 8 * 8
    for step in range(cfg.vae_steps):
        x = x_all[torch.randint(0, len(x_all), (cfg.vae_batch,), generator=gen)]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        rec = F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x)
        kl = posterior.kl().mean() / latent_elems
        loss = rec + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        psnr = 10 * torch.log10(4.0 / F.mse_loss(recon.detach(), x)).item()
        progress("vae", step + 1, cfg.vae_steps, {"loss": loss.item(), "psnr": psnr})
    return vae.eval()


@torch.no_grad()
def encode_all(vae, images: np.ndarray, batch: int = 512) -> torch.Tensor:
    """Posterior means of all images, (N, 4, 8, 8), unscaled."""
    return torch.cat([vae.encode(to_tensor(images[i:i + batch])).latent_dist.mode() for i in range(0, len(images), batch)])


@torch.no_grad()
def decode_all(vae, latents: torch.Tensor, batch: int = 512) -> np.ndarray:
    out = [vae.decode(latents[i:i + batch]).sample for i in range(0, len(latents), batch)]
    x = torch.cat(out).clamp(-1, 1).add(1).mul(127.5).round().byte()
    return x.permute(0, 2, 3, 1).numpy()


# ------------------------------------------------------------------ stage 4: UNet + text encoder
def _ema_update(ema: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)


def train_unet(latents: torch.Tensor, scenes: list[world.Scene], tokenizer, cfg: BuildConfig, progress: Progress):
    """Joint UNet + text-encoder training on scaled latents with random captions (world.caption)."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(cfg.seed + 2)
    unet = UNet2DConditionModel(**unet_config())
    text = CLIPTextModel(CLIPTextConfig(**text_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)))
    noise = DDPMScheduler(**noise_schedule())
    params = list(unet.parameters()) + list(text.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.unet_lr, total_steps=cfg.unet_steps, pct_start=0.05)
    gen, rng = torch.Generator().manual_seed(cfg.seed + 2), random.Random(cfg.seed + 2)
    unet.train(), text.train()
    for step in range(cfg.unet_steps):
        idx = torch.randint(0, len(latents), (cfg.unet_batch,), generator=gen)
        captions = ["" if rng.random() < cfg.caption_dropout else world.caption(scenes[i], rng) for i in idx.tolist()]
        ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length,
                        truncation=True, return_tensors="pt").input_ids
        x0 = latents[idx]
        eps = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, noise.config.num_train_timesteps, (len(x0),), generator=gen)
        pred = unet(noise.add_noise(x0, eps, t), t, encoder_hidden_states=text(ids)[0]).sample
        loss = F.mse_loss(pred, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        _ema_update(ema, params, min(cfg.ema_decay, (1 + step) / (10 + step)))
        progress("unet", step + 1, cfg.unet_steps, {"loss": loss.item()})
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    return unet.eval(), text.eval()


# ------------------------------------------------------------------ stage 5: assemble
def assemble_pipeline(unet, vae, text, tokenizer):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    scheduler = DDIMScheduler(**noise_schedule(), clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def _data_stage(work: Path, cfg: BuildConfig, progress: Progress):
    """The training and held-out renders (cached in work), with their scenes."""
    data = work / f"data-{cfg.seed}-{cfg.n_train}-{cfg.n_heldout}.npz"
    if not data.exists():
        progress("data", 0, 1, {})
        train_x, _ = render_set(cfg.n_train, cfg.seed)
        held_x, _ = render_set(cfg.n_heldout, cfg.seed + 10_000)
        np.savez(data, train_x=train_x, held_x=held_x)
        progress("data", 1, 1, {})
    arrays = np.load(data)
    train_s, held_s = world.sample_scenes(cfg.n_train, cfg.seed), world.sample_scenes(cfg.n_heldout, cfg.seed + 10_000)
    return arrays["train_x"], train_s, arrays["held_x"], held_s


def _vae_stage(work: Path, train_x, held_x, held_s, judge, cfg: BuildConfig, progress: Progress, report: dict):
    """The autoencoder (latents scaled to unit variance), its PSNR and the judge on its reconstructions."""
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    if not (work / "vae" / "config.json").exists():
        vae = train_vae(train_x, cfg, progress)
        raw = encode_all(vae, train_x)
        vae.register_to_config(scaling_factor=float(1.0 / raw.std()))
        vae.save_pretrained(work / "vae")
        save_file({"latents": raw.contiguous()}, str(work / "latents.safetensors"))
    vae = AutoencoderKL.from_pretrained(work / "vae").eval()
    held_recon = decode_all(vae, encode_all(vae, held_x))
    report["vae_psnr"] = float(10 * np.log10(255.0 ** 2 / np.mean((held_recon.astype(np.float64) - held_x) ** 2)))
    report["judge_on_vae_reconstructions"] = judge_accuracy(judge, held_recon, held_s)
    return vae


def _unet_stage(work: Path, vae, train_s, cfg: BuildConfig, progress: Progress):
    """The UNet and text encoder, trained jointly on the scaled latents; and the generated tokenizer."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(write_tokenizer(work / "tokenizer"))
    if not (work / "unet" / "config.json").exists():
        latents = load_file(str(work / "latents.safetensors"))["latents"] * vae.config.scaling_factor
        unet, text = train_unet(latents, train_s, tokenizer, cfg, progress)
        unet.save_pretrained(work / "unet")
        text.save_pretrained(work / "text_encoder")
    return UNet2DConditionModel.from_pretrained(work / "unet"), CLIPTextModel.from_pretrained(work / "text_encoder"), tokenizer


def build(out_dir: str | Path, work_dir: str | Path, cfg: BuildConfig = BuildConfig(),
          progress: Progress = _noop) -> dict:
    """Run every stage (reusing finished ones in work_dir) and write the pipeline + judge to out_dir.

    Returns the build report (also written to out_dir/build.json).
    """
    from .judge import load_judge

    work, out = Path(work_dir), Path(out_dir)
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"config": asdict(cfg), "seconds": {}}
    t0 = time.time()
    train_x, train_s, held_x, held_s = _data_stage(work, cfg, progress)
    report["seconds"]["data"] = round(time.time() - t0, 1)
    t = time.time()
    if not (work / "judge" / "judge.safetensors").exists():
        save_judge(train_judge(train_x, train_s, cfg, progress), work / "judge")
    judge = load_judge(work / "judge")
    report["judge_heldout_accuracy"] = judge_accuracy(judge, held_x, held_s)
    report["seconds"]["judge"] = round(time.time() - t, 1)
    t = time.time()
    vae = _vae_stage(work, train_x, held_x, held_s, judge, cfg, progress, report)
    report["seconds"]["vae"] = round(time.time() - t, 1)
    t = time.time()
    unet, text, tokenizer = _unet_stage(work, vae, train_s, cfg, progress)
    report["seconds"]["unet"] = round(time.time() - t, 1)
    pipe = assemble_pipeline(unet, vae, text, tokenizer)
    report["seconds"]["total"] = round(time.time() - t0, 1)
    report["sampler"] = {"guidance_scale": cfg.guidance_scale, "num_inference_steps": cfg.num_inference_steps}
    report["judge_classes"] = CLASSES
    with atomic_path(out) as tmp:           # the old build stays whole until the new one is complete (io.py)
        # stored in fp16 to fit the 20 MB budget; load_base() casts back to fp32 (CPU has no fast fp16)
        pipe.to(dtype=torch.float16)
        pipe.text_encoder.to(torch.float32)  # a bare from_pretrained loads it as stored and the UNet in fp32: agree
        pipe.save_pretrained(tmp / "pipeline")
        save_judge(judge, tmp / "judge")
        (tmp / "build.json").write_text(json.dumps(report, indent=1))
    return report
