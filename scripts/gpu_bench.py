"""Speed and memory of duge-lora at Stable Diffusion 1.5 size, with random weights, on one GPU; one JSON out.

What it measures (issue 15), through the library's own code paths (train_adapter, compose_adapters, generate):
- one request at the default settings (`duge-lora train`'s: 100 steps, data generation included): its seconds,
  the seconds per training step, and the peak GPU memory;
- compose of 10 adapters into one merged UNet file (compose's `sum`, float32 merge, safetensors write);
- inference: seconds per image of the merged model against the same 10 adapters stacked live in peft;
- the recovery attack's learning (issue 16: textual inversion, attack.learn_embeddings, at its default budget) on
  the merged model: its seconds and peak memory (no rate: random weights leave nothing to recover);
- one request with `duge-lora train --robust`'s preset (4 adversarial rounds of that attack, k/v/out/ff adapted) on
  the same data as the first request (cached by then): its seconds and peak memory.
The JSON is rewritten after each part ("complete": false until the end), so a run cut short keeps what it measured.

The pipeline is built here with SD 1.5's shapes (UNet 860M parameters, CLIP ViT-L/14 text encoder, the SD VAE,
512 px) and random weights: images are noise, timings and memory are those of the real architecture. The other
nine adapters are the first one's shapes with random factors (compose's cost does not depend on the values).

    python scripts/gpu_bench.py [--out gpu-bench.json] [--mixed-precision fp16|bf16]
    python scripts/gpu_bench.py --dry-run        (tiny sizes on the CPU in seconds: the test suite runs this)
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {
    # Stable Diffusion 1.5 (runwayml/stable-diffusion-v1-5's configs)
    "sd15": dict(unet=dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                           down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                           up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                           cross_attention_dim=768, attention_head_dim=8),
                 vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=512,
                          down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
                 text=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                           num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"),
                 steps=100, max_prompts=64, images=4, inference_steps=25),
    # the same code paths in seconds on a CPU (--dry-run)
    "tiny": dict(unet=dict(sample_size=8, block_out_channels=(32, 64), layers_per_block=1,
                           down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                           attention_head_dim=8, norm_num_groups=32),
                 vae=dict(block_out_channels=(32, 32), layers_per_block=1, sample_size=16, norm_num_groups=16,
                          down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
                 text=dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=4, max_position_embeddings=77),
                 steps=2, max_prompts=4, images=2, inference_steps=2),
}
N_ADAPTERS = 10
WORDS = ["a", "photo", "of", "red", "car", "drawing", "painting", "close", "up", "in", "room", "picture", "an", "object",
         "dog", "house", "city", "street", "at", "night"]


def build_pipeline(folder: Path, size: dict) -> Path:
    """A StableDiffusionPipeline with the given shapes and random weights, saved (safetensors) to folder."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from duge_lora.toy.tokenizer import write_tokenizer

    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(write_tokenizer(folder / "_tok", WORDS))
    tok.model_max_length = size["text"]["max_position_embeddings"]
    text = CLIPTextModel(CLIPTextConfig(**size["text"], bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                        pad_token_id=tok.eos_token_id))
    unet = UNet2DConditionModel(in_channels=4, out_channels=4, **size["unet"])
    vae = AutoencoderKL(latent_channels=4, **size["vae"])
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False,
                                                           steps_offset=1, set_alpha_to_one=False),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_copies(first: Path, n: int, folder: Path) -> list[Path]:
    """n adapters with the first one's shapes and record, random factors, and concepts of their own."""
    from duge_lora.formats import write_adapter_folder
    from duge_lora.records import resolve_adapter

    a = resolve_adapter(first)
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        factors = {m: (torch.randn(A.shape, generator=g) * 0.01, torch.randn(B.shape, generator=g) * 0.01)
                   for m, (A, B) in a.weights.items()}
        record = a.record.to_dict()
        record["request"] = dict(record["request"], concept=f"concept {i + 2}")
        write_adapter_folder(folder / f"a{i + 2}", factors, a.spec, record, "random factors (gpu_bench.py)\n")
        out.append(folder / f"a{i + 2}")
    return out


def seconds_per_image(base, prompts: list[str], steps: int, device: torch.device) -> float:
    from duge_lora.generate import generate

    generate(base, prompts[:1], 1, seed=0, num_inference_steps=1)        # warm-up (kernels, allocator)
    sync(device)
    t0 = time.time()
    generate(base, prompts, 1, seed=0, num_inference_steps=steps)
    sync(device)
    return round((time.time() - t0) / len(prompts), 4)


def request(base, size: dict, precision: str, work: Path, name: str, robust: bool = False) -> dict:
    """One request ("a red car") at `duge-lora train`'s defaults, data generation included (a fresh cache), or with its
    --robust preset on the same data (cached by then: its seconds are the training and the adversarial rounds)."""
    from duge_lora import adversarial
    from duge_lora.adversarial import robust_preset
    from duge_lora.train import TrainConfig, train_adapter

    req = base.world.make_request("a red car", kind="object")
    cfg = TrainConfig(steps=size["steps"], max_prompts=size["max_prompts"], checkpoint_every=0, mixed_precision=precision)
    cfg = robust_preset(cfg) if robust else cfg
    if robust and size["steps"] <= 10:           # --dry-run: the inner attack's budget cut too, to keep it seconds
        adversarial.ATTACK_STEPS = 2
    sync(base.device)
    t0 = time.time()
    rec = train_adapter(base, req, [], cfg, work / name, cache=work / "cache")
    sync(base.device)
    return {"seconds": round(time.time() - t0, 2), "steps": cfg.steps, "seconds_per_step": rec.seconds_per_step,
            "training_seconds": round(rec.seconds_per_step * cfg.steps, 2), "peak_mb": rec.peak_mb, "data": rec.data,
            **({"adversarial_rounds": cfg.adversarial, "targets": list(cfg.lora.targets)} if robust else {})}


def attack_cost(model, size: dict) -> dict:
    """The recovery attack's learning part (attack.learn_embeddings, textual inversion) at the bench's default budget,
    on `model`, from random latents (its cost does not depend on their values). Judging its images is generation,
    timed under "inference"; the random weights leave nothing to recover, so no rate is measured."""
    from duge_lora.attack import AttackConfig, add_placeholders, learn_embeddings, placeholder_words
    from duge_lora.memory import peak_memory_mb, reset_peak_memory

    cfg = AttackConfig() if size["steps"] > 10 else AttackConfig(steps=2)
    ids = add_placeholders(model.pipe, cfg.tokens)
    word = " ".join(placeholder_words(cfg.tokens))
    side = size["unet"]["sample_size"]
    x0 = torch.randn(cfg.batch, 4, side, side, generator=torch.Generator().manual_seed(0))
    templates = [f"a photo of {word}", f"a drawing of {word}", f"a close up picture of {word}", f"{word} in a room"]
    prompts = [templates[i % len(templates)] for i in range(len(x0))]          # one prompt per latent
    reset_peak_memory(model.device)
    sync(model.device)
    t0 = time.time()
    loss = learn_embeddings(model, x0.to(model.device), prompts, ids, cfg)
    sync(model.device)
    seconds = time.time() - t0
    return {"steps": cfg.steps, "batch": cfg.batch, "tokens": cfg.tokens, "seconds": round(seconds, 2),
            "seconds_per_step": round(seconds / cfg.steps, 4), "final_loss": round(loss, 5),
            "peak_mb": peak_memory_mb(model.device)}


def run(size_name: str, device: torch.device, precision: str, work: Path, save=None) -> dict:
    """Every measurement in turn; `save(out)` is called after each, so a run cut short keeps what it measured."""
    from duge_lora.compose import Item, apply_items, compose_adapters
    from duge_lora.models import load_base
    from duge_lora.records import resolve_adapter
    from duge_lora.verify import live_stack

    save = save or (lambda out: None)
    size = SIZES[size_name]
    t0 = time.time()
    pipeline = build_pipeline(work, size)
    out: dict = {"size": size_name, "device": str(device), "mixed_precision": precision,
                 "build_seconds": round(time.time() - t0, 1)}
    base = load_base(str(pipeline), str(device), mixed_precision=precision)
    out["unet_parameters"] = sum(p.numel() for p in base.pipe.unet.parameters())
    out["request"] = request(base, size, precision, work, "a1")
    save(out)
    adapters = [work / "a1"] + random_copies(work / "a1", N_ADAPTERS - 1, work)
    t0 = time.time()
    compose_adapters([str(a) for a in adapters], work / "merged.safetensors", str(pipeline), device=device, verify=False)
    out["compose"] = {"adapters": len(adapters), "seconds": round(time.time() - t0, 2),
                      "bytes": (work / "merged.safetensors").stat().st_size}
    prompts = [f"a photo of a red car {i}" for i in range(size["images"])]
    merged = load_base(str(pipeline), str(device), mixed_precision=precision)
    apply_items(merged, [Item(resolve_adapter(a)) for a in adapters])
    stacked = load_base(str(pipeline), str(device), mixed_precision=precision)
    live_stack(stacked, [str(a) for a in adapters])
    m = seconds_per_image(merged, prompts, size["inference_steps"], device)
    s = seconds_per_image(stacked, prompts, size["inference_steps"], device)
    out["inference"] = {"images": len(prompts), "steps": size["inference_steps"], "merged_seconds_per_image": m,
                        "stacked_seconds_per_image": s, "stacked_over_merged": round(s / m, 3) if m else None}
    del stacked
    save(out)
    out["attack"] = attack_cost(merged, size)
    del merged, base
    save(out)
    out["robust_request"] = request(load_base(str(pipeline), str(device), mixed_precision=precision), size, precision,
                                    work, "robust", robust=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("gpu-bench.json"))
    p.add_argument("--mixed-precision", choices=("fp16", "bf16", "no"), default="fp16")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (seconds): checks the script runs")
    args = p.parse_args(argv)
    if args.dry_run:
        device, size, precision = torch.device("cpu"), "tiny", "no"
    else:
        if not torch.cuda.is_available():
            print("error: no GPU here; gpu_bench.py measures a GPU. Run it where one is, or pass --dry-run.", file=sys.stderr)
            return 4
        device, size, precision = torch.device("cuda"), "sd15", args.mixed_precision
    t0 = time.time()
    from duge_lora.io import atomic_path

    def save(result: dict, done: bool = False) -> None:
        result = dict(result, complete=done, total_seconds=round(time.time() - t0, 1),
                      date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      command="python scripts/gpu_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                      machine={"gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
                               "torch": torch.__version__, "python": platform.python_version()})
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2) if done else f"[{result['total_seconds']} s] saved {', '.join(result)}", flush=True)

    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        result = run(size, device, precision, Path(tmp), save)
    save(result, done=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
