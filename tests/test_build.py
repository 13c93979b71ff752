"""`duge-lora toy build` runs every stage for real (tiny settings) and writes a loadable pipeline."""
import json

import numpy as np
import torch

from duge_lora_cli.main import main


def test_toy_build_end_to_end_tiny(tmp_path, capsys):
    out, work = tmp_path / "model", tmp_path / "work"
    args = ["toy", "build", "-o", str(out), "--work", str(work), "--n-train", "600", "--n-heldout", "300",
            "--judge-steps", "3", "--vae-steps", "3", "--unet-steps", "3", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["judge_heldout_accuracy"]) == {"object", "color", "style", "character"}
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(str(out / "pipeline"), dtype=torch.float32)
    image = pipe("a red circle", num_inference_steps=2, output_type="np").images
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()
    # a second build reuses every finished stage and refuses to clobber without --overwrite
    assert main(args) == 4
    assert main(args + ["--overwrite"]) == 0
