"""Tiny random models built in the tests (nothing is downloaded): Stable Diffusion pipelines in the SD 1.x and
SD 2.x layouts, a CLIP judge and an ImageNet-style classifier judge. Shared by tests/ and tests/reliability/."""
from __future__ import annotations

from pathlib import Path

import torch

TINY_WORDS = ["a", "photo", "of", "an", "astronaut", "riding", "horse", "cat", "dog", "painting", "in", "the", "style", "drawing",
              "picture", "image", "cartoon", "character", "snoopy", "mickey", "mouse", "church", "tench"]
LABELS = {0: "tench, Tinca tinca", 1: "church, church building", 2: "garbage truck, dustcart", 3: "golden retriever"}


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


def build_tiny_clip(folder, words) -> str:
    """Save a tiny random CLIP (32x32 images, 16-d projections) with its tokenizer and image processor to folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from duge_lora.toy.tokenizer import write_tokenizer

    folder = Path(folder)
    tok = CLIPTokenizer.from_pretrained(write_tokenizer(folder, words))
    torch.manual_seed(0)
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                max_position_embeddings=max(16, tok.model_max_length), bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, image_size=32,
                  patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


def build_tiny_classifier(folder) -> str:
    """Save a tiny random ResNet classifier over four ImageNet-style labels, with its image processor, to folder."""
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=4, id2label=LABELS,
                          label2id={v: k for k, v in LABELS.items()})
    ResNetForImageClassification(config).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(folder)
    return str(folder)
