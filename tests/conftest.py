"""Shared fixtures. Nothing here downloads: HF_HUB_OFFLINE=1 and every model is the embedded toy or built here."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from duge_lora.models import load_base  # noqa: E402

TINY_WORDS = ["a", "photo", "of", "an", "astronaut", "riding", "horse", "cat", "dog", "painting", "in", "the", "style", "drawing",
              "picture", "image", "cartoon", "character", "snoopy", "mickey", "mouse", "church", "tench"]


@pytest.fixture(scope="session")
def toy_base():
    """The shipped toy pipeline, loaded once (tests must not attach adapters to it)."""
    return load_base("toy", device="cpu")


def build_tiny_sd(folder, layout: str = "sd1") -> str:
    """Save a tiny pipeline with Stable Diffusion's architecture (random weights, 16x16 images) to folder.

    layout "sd1": SD 1.x (epsilon prediction, conv projections in the transformer blocks, cross-attention width 32);
    "sd2": SD 2.x (v-prediction, linear projections, per-block head counts, a wider cross-attention width 48)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from duge_lora.toy.tokenizer import write_tokenizer

    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(write_tokenizer(folder / "_tok", TINY_WORDS))
    sd2 = layout == "sd2"
    width = 48 if sd2 else 32
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=width,
                                attention_head_dim=(2, 4) if sd2 else 8, use_linear_projection=sd2, norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=16, sample_size=16)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=width, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=4, max_position_embeddings=16,
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False,
                                                           prediction_type="v_prediction" if sd2 else "epsilon"),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    name = "tiny-sd2" if sd2 else "tiny-sd"
    pipe.save_pretrained(folder / name)
    return str(folder / name)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> str:
    return build_tiny_sd(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_sd2(tmp_path_factory) -> str:
    return build_tiny_sd(tmp_path_factory.mktemp("tiny2"), "sd2")
