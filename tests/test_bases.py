"""--base accepts a local SD-architecture folder (built here) and refuses what it cannot load."""
import json
from pathlib import Path

import pytest

from duge_lora.errors import EnvironmentProblem, BaseNotFound, NoJudge
from duge_lora.models import load_base
from duge_lora_cli.main import main


def test_local_sd_architecture_base_samples(tiny_sd, tmp_path, capsys):
    out = tmp_path / "g.png"
    code = main(["sample", "a photo of an astronaut riding a horse", "-n", "2", "--steps", "2",
                 "--base", tiny_sd, "-o", str(out), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and out.exists() and result["base"] == tiny_sd


def test_non_toy_base_uses_diffusers_defaults_and_eval_refuses(tiny_sd):
    base = load_base(tiny_sd, device="cpu")
    assert base.world.name == "generic" and not base.world.has_judge and base.sampler["guidance_scale"] == 7.5
    with pytest.raises(NoJudge):
        base.world.evaluate(base, n=1)


def test_unreachable_hub_id_is_a_clear_error():
    with pytest.raises(EnvironmentProblem, match="offline"):
        load_base("someone/not-a-real-model", device="cpu")


def test_folder_without_model_index_is_refused(tmp_path):
    with pytest.raises(BaseNotFound, match="model_index.json"):
        load_base(str(tmp_path), device="cpu")


def test_the_base_fingerprint_does_not_depend_on_the_load_precision(tmp_path, capsys):
    """bf16 rounds the weights, so hashing the loaded UNet gave a bf16 load another identity: `sample
    --mixed-precision bf16` refused the shipped adapters, and compose refused adapters trained in bf16. The
    identity is the stored UNet file's (Base.fingerprint)."""
    import torch

    from duge_lora import toy
    from duge_lora.adapter import file_fingerprint, fingerprint
    from duge_lora.formats import UNET_WEIGHTS

    fp32, bf16 = load_base("toy", "cpu", mixed_precision="no"), load_base("toy", "cpu", mixed_precision="bf16")
    assert bf16.pipe.unet.dtype == torch.bfloat16
    assert fingerprint(bf16.pipe.unet) != fingerprint(fp32.pipe.unet)          # what the old identity did
    assert bf16.fingerprint == fp32.fingerprint == fingerprint(fp32.pipe.unet) == file_fingerprint(toy.PIPELINE_DIR / UNET_WEIGHTS)
    circle = str(Path(__file__).parent.parent / "adapters" / "toy" / "circle")
    code = main(["sample", "a red circle", "-n", "1", "--steps", "2", "--adapters", circle, "--mixed-precision", "bf16",
                 "-o", str(tmp_path / "g.png")])
    assert code == 0 and (tmp_path / "g.png").exists(), capsys.readouterr().err
