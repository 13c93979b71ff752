"""The shipped toy pipeline and judge: load offline, SD naming, size budget, judge accuracy."""
import re

import numpy as np
import torch

from duge_lora import toy
from duge_lora.toy import world
from duge_lora.toy.judge import accuracy, load_judge

SD_CROSS_ATTN = re.compile(r"^(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+\.transformer_blocks\.\d+\.attn2\.to_[kv]$")


def test_shipped_pipeline_loads_offline_with_plain_diffusers():
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(str(toy.PIPELINE_DIR), dtype=torch.float32)
    names = [n for n, _ in pipe.unet.named_modules() if n.endswith(("attn2.to_k", "attn2.to_v"))]
    assert len(names) >= 6 and all(SD_CROSS_ATTN.match(n) for n in names), names
    assert any(n.startswith("mid_block") for n in names)
    assert pipe.unet.config.sample_size * pipe.vae_scale_factor == 32


def test_shipped_weights_fit_the_budget():
    total = sum(f.stat().st_size for f in toy.ASSETS.rglob("*") if f.is_file())
    assert total <= 20 * 1024 * 1024, total


def test_toy_base_is_recognised_and_samples(toy_base):
    from duge_lora.generate import generate
    assert toy_base.world.name == "toy" and toy_base.world.has_judge and toy_base.name == "toy"
    images = generate(toy_base, ["a red solid circle"], n=2, seed=0)
    again = generate(toy_base, ["a red solid circle"], n=2, seed=0)
    assert images.shape == (1, 2, 32, 32, 3) and np.array_equal(images, again)


def test_judge_reads_fresh_renders():
    scenes = world.sample_scenes(1500, seed=987)
    acc = accuracy(load_judge(toy.JUDGE_DIR), world.render_batch(scenes, seed=987), scenes)
    assert min(acc.values()) >= 0.99, acc
