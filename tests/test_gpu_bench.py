"""scripts/gpu_bench.py --dry-run: the GPU benchmark's whole path at tiny sizes on the CPU, so it cannot rot."""
import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "scripts" / "gpu_bench.py"


def test_gpu_bench_dry_run_writes_its_json(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    gpu_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_bench)
    out = tmp_path / "gpu-bench.json"
    assert gpu_bench.main(["--dry-run", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["size"] == "tiny" and r["device"] == "cpu" and r["machine"]["gpu"] is None
    req = r["request"]
    assert req["steps"] == 2 and 0 < req["seconds_per_step"] < req["seconds"] and req["peak_mb"] > 0
    assert req["data"]["cached"] == {"anchor": False, "preserve": False, "replay": False}   # data generation included
    assert r["compose"]["adapters"] == gpu_bench.N_ADAPTERS == 10 and r["compose"]["bytes"] > 0
    inf = r["inference"]
    assert inf["merged_seconds_per_image"] > 0 and inf["stacked_seconds_per_image"] > 0
    assert inf["stacked_over_merged"] == round(inf["stacked_seconds_per_image"] / inf["merged_seconds_per_image"], 3)
    assert r["complete"] is True and r["attack"]["steps"] == 2 and r["attack"]["seconds"] > 0 and r["attack"]["peak_mb"] > 0
    rob = r["robust_request"]
    assert rob["adversarial_rounds"] == 4 and rob["targets"] == ["k", "v", "out", "ff-low"] and rob["seconds"] > 0
    assert all(rob["data"]["cached"].values())          # the first request's data: the rounds and steps are timed


def test_the_sd15_sizes_are_stable_diffusion_1_5s():
    """Built on the meta device (no memory): the UNet, VAE and text encoder have SD 1.5's parameter counts."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    gpu_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_bench)
    s = gpu_bench.SIZES["sd15"]
    with torch.device("meta"):
        parts = {"unet": UNet2DConditionModel(in_channels=4, out_channels=4, **s["unet"]),
                 "vae": AutoencoderKL(latent_channels=4, **s["vae"]), "text": CLIPTextModel(CLIPTextConfig(**s["text"]))}
    millions = {k: sum(p.numel() for p in m.parameters()) / 1e6 for k, m in parts.items()}
    assert 859 < millions["unet"] < 860 and 83 < millions["vae"] < 84 and 123 < millions["text"] < 124, millions
