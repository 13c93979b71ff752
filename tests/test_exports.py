"""Exports read by other tools: compose --format kohya, loaded by diffusers' own kohya conversion and by a second
real loader (lycoris-lora, which reads kohya sd-scripts files), each equal to the live stack within 1e-5."""
from pathlib import Path

import pytest
from safetensors import safe_open

from duge_lora.formats import read_lora_file
from duge_lora.models import load_base
from duge_lora.verify import composed_unet, live_stack, probe
from duge_lora_cli.main import main

ROOT = Path(__file__).parent.parent
STACK = [str(ROOT / "adapters/toy/circle"), f"{ROOT / 'adapters/toy/red'}:0.5"]


@pytest.fixture(scope="module")
def kohya_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kohya") / "erase.safetensors"
    assert main(["compose", *STACK, "--format", "kohya", "-o", str(out), "--no-verify", "--json"]) == 0
    return out


@pytest.fixture(scope="module")
def stack_probe():
    live = load_base("toy", "cpu")
    live_stack(live, [s.split(":")[0] for s in STACK], [1.0, 0.5])
    return probe(live.pipe.unet), probe(load_base("toy", "cpu").pipe.unet)


def test_kohya_layout(kohya_file):
    with safe_open(str(kohya_file), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert keys and all(k.startswith("lora_unet_") and k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha"))
                        for k in keys)
    assert any("_attn2_to_k.lora_down.weight" in k for k in keys)
    assert meta["ss_network_module"] == "networks.lora" and "duge_manifest" in meta


def test_kohya_file_through_diffusers_equals_the_stack(kohya_file, stack_probe):
    ref, base = stack_probe
    got = probe(composed_unet(kohya_file, "kohya", str(ROOT / "duge_lora/toy/assets/pipeline"), "cpu"))
    assert float((got - ref).abs().max()) < 1e-5 < float((ref - base).abs().max())


def test_kohya_file_through_lycoris_equals_the_stack(kohya_file, stack_probe, monkeypatch):
    import lycoris.kohya as lycoris         # a test dependency (pyproject's `test` extra): this test always runs
    net_cls = lycoris.LycorisNetworkKohya
    # lycoris's default targets give the diffusers UNet's time embedding two names (an assertion): target the
    # attention blocks, where the adapters are
    for attr, value in (("UNET_TARGET_REPLACE_MODULE", ["Transformer2DModel"]), ("UNET_TARGET_REPLACE_NAME", []),
                        ("TEXT_ENCODER_TARGET_REPLACE_MODULE", [])):
        monkeypatch.setattr(net_cls, attr, value)
    base = load_base("toy", "cpu")
    net, sd = lycoris.create_network_from_weights(1.0, str(kohya_file), None, base.pipe.text_encoder, base.pipe.unet,
                                                  for_inference=True)
    net.apply_to(base.pipe.text_encoder, base.pipe.unet, apply_text_encoder=False, apply_unet=True)
    assert not net.load_state_dict(sd, strict=False).unexpected_keys
    assert len(net.unet_loras) == len({k.split(".")[0] for k in sd})
    ref, _ = stack_probe
    assert float((probe(base.pipe.unet) - ref).abs().max()) < 1e-5


def test_single_file_generates_the_images_of_the_composed_pipeline(tmp_path):
    """compose --format single-file, loaded with from_single_file(path, config=<pipeline folder>) offline, draws
    the same images as the composed pipeline folder (same seed) within 1e-5."""
    import torch
    from diffusers import StableDiffusionPipeline

    folder, single = tmp_path / "unlearned", tmp_path / "unlearned.safetensors"
    for fmt, out in (("pipeline", folder), ("single-file", single)):
        assert main(["compose", *STACK, "--format", fmt, "-o", str(out), "--no-verify", "--json"]) == 0
    with safe_open(str(single), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("model.diffusion_model.input_blocks.") for k in keys)
    assert any(k.startswith("first_stage_model.") for k in keys) and any(k.startswith("cond_stage_model.") for k in keys)
    pipes = [StableDiffusionPipeline.from_pretrained(str(folder), dtype=torch.float32),
             StableDiffusionPipeline.from_single_file(str(single), config=str(folder), dtype=torch.float32,
                                                      local_files_only=True)]
    images = [p("a red circle", num_inference_steps=5, generator=torch.Generator().manual_seed(0), output_type="np").images
              for p in pipes]
    assert images[0].std() > 0 and abs(images[0] - images[1]).max() < 1e-5


@pytest.mark.parametrize("ff, blocks", [("ff", 7), ("ff-low", 4)])
def test_an_adapter_on_the_feed_forward_output_loads_merges_and_exports_like_the_others(tmp_path, ff, blocks):
    """The robust preset also adapts ff.net.2 (adversarial.py; ff-low: the four blocks below the toy latent's full
    resolution): plain diffusers' load_lora_weights, compose's merge and the kohya export read those factors too, each
    equal to the live adapter within 1e-5, and diffusers adds LoRA layers to the adapted blocks alone."""
    import json

    from safetensors.torch import load_file

    ad = tmp_path / "ff"
    assert main(["train", "--concept", "circle", "--targets", f"k,v,out,{ff}", "--max-prompts", "8", "--steps", "2",
                 "--batch", "2", "-o", str(ad), "--json"]) == 0
    assert json.loads((ad / "duge.json").read_text())["lora"]["targets"] == ["k", "v", "out", ff]
    ff_keys = [k for k in load_file(str(ad / "pytorch_lora_weights.safetensors")) if ".ff.net.2.lora_B." in k]
    assert len(ff_keys) == blocks                 # ff: one per transformer block of the toy UNet
    full_res = ("down_blocks.0.", "up_blocks.1.")
    assert (ff == "ff-low") == (not any(k.split("unet.")[-1].startswith(full_res) for k in ff_keys))
    plain = load_base("toy", "cpu")
    plain.pipe.load_lora_weights(str(ad), adapter_name="erase")            # as a user types it
    lora_ff = [n for n, m in plain.pipe.unet.named_modules() if n.endswith("ff.net.2") and hasattr(m, "lora_A")]
    assert len(lora_ff) == blocks
    live = load_base("toy", "cpu")
    live_stack(live, [str(ad)])
    ref, base = probe(live.pipe.unet), probe(load_base("toy", "cpu").pipe.unet)
    assert float((ref - base).abs().max()) > 1e-5
    for fmt, name in (("unet", "merged.safetensors"), ("kohya", "erase.safetensors")):
        out = tmp_path / name
        assert main(["compose", str(ad), "--format", fmt, "-o", str(out), "--no-verify", "--json"]) == 0
        got = probe(composed_unet(out, fmt, str(ROOT / "duge_lora/toy/assets/pipeline"), "cpu"))
        assert float((got - ref).abs().max()) < 1e-5, fmt
    out = tmp_path / "sum.safetensors"                  # compose's LoRA output: its targets are read from the names
    assert main(["compose", str(ad), "--format", "lora", "-o", str(out), "--no-verify", "--json"]) == 0
    assert read_lora_file(out)[1].targets == tuple(sorted(("k", "v", "out", ff)))
    plain = load_base("toy", "cpu")
    plain.pipe.load_lora_weights(str(tmp_path), weight_name=out.name, adapter_name="composed")
    assert len([n for n, m in plain.pipe.unet.named_modules() if n.endswith("ff.net.2") and hasattr(m, "lora_A")]) == blocks
    assert float((probe(plain.pipe.unet) - ref).abs().max()) < 1e-5
