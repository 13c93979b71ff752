"""--base accepts a local SD-architecture folder (built here) and refuses what it cannot load."""
import json

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
