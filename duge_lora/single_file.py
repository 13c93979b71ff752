"""The original Stable Diffusion checkpoint layout (one file: UNet, VAE, text encoder), for `--format single-file`.

A diffusers pipeline's weights under the LDM names that AUTOMATIC1111, ComfyUI and diffusers'
`from_single_file` read (`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`).
The mapping is the inverse of diffusers' own conversion (diffusers/loaders/single_file_utils.py:
convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint), written for any
layers_per_block and number of blocks, so the toy and SD 1.x/2.x UNets go through the same code.
"""
from __future__ import annotations

import re

import torch

UNET, VAE, CLIP = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_VAE_FIXED = {"conv_norm_out": "norm_out"}
_VAE_ATTN = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return dict(_RESNET).get(head, head) + "." + tail


def unet_key(key: str, config: dict) -> str:
    """A diffusers UNet key -> its LDM name (without the model.diffusion_model. prefix)."""
    n = config["layers_per_block"] + 1
    module, _, param = key.rpartition(".")
    if module in _UNET_FIXED:
        return f"{_UNET_FIXED[module]}.{param}"
    m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.*)", key)
    if m:
        side, b, kind, i, rest = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
        if side == "down":
            if kind == "downsamplers":
                return f"input_blocks.{(b + 1) * n}.0.op.{rest.split('.', 1)[1]}"
            return f"input_blocks.{b * n + i + 1}.{0 if kind == 'resnets' else 1}.{_resnet(rest) if kind == 'resnets' else rest}"
        if kind == "upsamplers":
            slot = 2 if "CrossAttn" in config["up_block_types"][b] else 1
            return f"output_blocks.{b * n + n - 1}.{slot}.{rest}"
        return f"output_blocks.{b * n + i}.{0 if kind == 'resnets' else 1}.{_resnet(rest) if kind == 'resnets' else rest}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        kind, i, rest = m.groups()
        return f"middle_block.{2 * int(i)}.{_resnet(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
    raise ValueError(f"no LDM name for UNet weight {key}")


def vae_key(key: str, config: dict) -> tuple[str, bool]:
    """A diffusers VAE key -> (its LDM name, whether it is an attention projection stored as a 1x1 conv)."""
    part, _, rest = key.partition(".")
    module, _, param = rest.rpartition(".")
    if part not in ("encoder", "decoder"):
        return key, False                                 # quant_conv, post_quant_conv
    if module in _VAE_FIXED or module in ("conv_in", "conv_out"):
        return f"{part}.{_VAE_FIXED.get(module, module)}.{param}", False
    m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)", rest)
    if m:
        side, b, kind, i, tail = m.group(1), int(m.group(2)), m.group(3), m.group(4), m.group(5)
        b = b if side == "down" else len(config["up_block_types"]) - 1 - b
        if kind in ("downsamplers", "upsamplers"):
            return f"{part}.{side}.{b}.{'downsample' if side == 'down' else 'upsample'}.{tail}", False
        return f"{part}.{side}.{b}.block.{i}.{tail.replace('conv_shortcut', 'nin_shortcut')}", False
    m = re.match(r"mid_block\.resnets\.(\d+)\.(.*)", rest)
    if m:
        return f"{part}.mid.block_{int(m.group(1)) + 1}.{m.group(2).replace('conv_shortcut', 'nin_shortcut')}", False
    m = re.match(r"mid_block\.attentions\.0\.(.*)\.(weight|bias)", rest)
    if m:
        name = dict(_VAE_ATTN)[m.group(1)]
        return f"{part}.mid.attn_1.{name}.{m.group(2)}", name != "norm"
    raise ValueError(f"no LDM name for VAE weight {key}")


def to_ldm(unet: dict, unet_config: dict, vae: dict, vae_config: dict, text: dict) -> dict[str, torch.Tensor]:
    """One state dict in the original SD layout from the three diffusers state dicts."""
    out = {UNET + unet_key(k, unet_config): v for k, v in unet.items()}
    for k, v in vae.items():
        name, conv = vae_key(k, vae_config)
        out[VAE + name] = v[:, :, None, None] if conv and v.dim() == 2 else v
    out.update({CLIP + (k if k.startswith("text_model.") else "text_model." + k): v for k, v in text.items()})
    return {k: v.contiguous() for k, v in out.items()}


def from_folder(folder, unet: dict) -> dict[str, torch.Tensor]:
    """The single-file state of a pipeline folder whose UNet weights are replaced by `unet` (the merged ones)."""
    import json

    from safetensors.torch import load_file

    config = lambda part: json.loads((folder / part / "config.json").read_text())  # noqa: E731
    vae = load_file(str(folder / "vae" / "diffusion_pytorch_model.safetensors"))
    text = load_file(str(folder / "text_encoder" / "model.safetensors"))
    return to_ldm(unet, config("unet"), vae, config("vae"), text)
