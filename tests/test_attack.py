"""`duge-lora attack` (attack.py): textual inversion into the erased model brings a concept back; its ceiling on the
base; seeded; bad input."""
import json
from pathlib import Path

import pytest

from duge_lora_cli.main import main

ADAPTER = str(Path(__file__).parent.parent / "adapters" / "toy" / "circle")


def test_attack_recovers_an_erased_concept_and_reports_its_ceiling(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DUGE_LORA_CACHE", str(tmp_path / "cache"))
    args = ["attack", "--concept", "circle", "--adapters", ADAPTER, "--steps", "60", "--json"]
    assert main(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["plain"] <= 0.1                      # the adapter erases the plain prompts
    assert r["ceiling"] >= 0.9                    # the attack works on the base
    assert 0.0 <= r["recovered"] <= 1.0 and r["images"] == 18 and r["steps"] == 60
    assert main(args + ["--no-ceiling"]) == 0     # seeded: the same figures again (the ceiling's attack is the same code)
    again = json.loads(capsys.readouterr().out)
    assert again["ceiling"] is None
    assert {k: again[k] for k in ("recovered", "plain", "final_loss")} == {k: r[k] for k in ("recovered", "plain", "final_loss")}


@pytest.mark.parametrize("extra, says", [(["--steps", "0"], "--steps"), (["--steps", "10000000"], "--steps"),
                                         (["--lr", "nan"], "--lr"), (["--concept", "dragon"], "dragon")])
def test_bad_attack_input(extra, says, capsys):
    argv = ["attack", "--concept", "circle", *extra]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err


def test_attack_takes_several_adapters_after_one_flag(capsys):
    """`--adapters A1 A2 ...` as eval and sample take it (the issue's own spelling); the budget is then refused,
    so nothing runs."""
    red = str(Path(ADAPTER).parent / "red")
    code = main(["attack", "--adapters", ADAPTER, red, "--concept", "red", "--steps", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--steps" in err and "unexpected extra argument" not in err


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    from tiny import TINY_WORDS, build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip"), TINY_WORDS)


def test_attack_on_a_real_base_uses_the_adapters_templates_and_the_judge(tiny_sd, tiny_judge, tmp_path, capsys):
    """A tiny random SD 1.x pipeline: the erased concept's prompts are its adapter's (a prompts file here), read
    by the CLIP judge; without a judge, or with another kind than the adapter's, one sentence and exit 2."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of {}\na drawing of {}\n{} in the style of a painting\n")
    adapter = tmp_path / "a"
    assert main(["train", "--base", tiny_sd, "--concept", "church", "--kind", "object", "--prompts", str(prompts),
                 "--steps", "2", "--batch", "2", "-o", str(adapter), "--json"]) == 0
    capsys.readouterr()
    args = ["attack", "--base", tiny_sd, "--adapters", str(adapter), "--concept", "church", "--steps", "3", "-n", "2",
            "--judge", tiny_judge, "--no-ceiling", "--json"]
    assert main(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["images"] == 3 * 2 and r["steps"] == 3 and r["ceiling"] is None     # 3 templates x 2 images
    assert 0.0 <= r["recovered"] <= 1.0 and 0.0 <= r["plain"] <= 1.0 and r["final_loss"] > 0
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["final_loss"] == r["final_loss"]   # seeded
    no_judge = [a for a in args if a not in ("--judge", tiny_judge)]
    for argv, says in ((no_judge, "--judge"), (args + ["--kind", "style"], "--kind")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
    # the adapter on another base (the toy model): refused before any attack runs
    assert main(["attack", "--adapters", str(adapter), "--concept", "church", "--json"]) != 0
    err = capsys.readouterr().err
    assert "another base" in err and "Traceback" not in err


def test_robust_training_runs_on_a_real_base(tiny_sd, tmp_path, monkeypatch, capsys):
    """The inner attack of --robust prompts the request's templates on a real base (no judge needed to train): a
    round adds one pair per target prompt, the concept's word replaced by the learned one."""
    from duge_lora import adversarial
    from duge_lora.adversarial import robust_preset
    from duge_lora.models import load_base
    from duge_lora.train import TrainConfig, prepare

    monkeypatch.setattr(adversarial, "ATTACK_STEPS", 3)
    base = load_base(tiny_sd, "cpu")
    req = base.world.make_request("church", kind="object")
    s = prepare(base, req, [], robust_preset(TrainConfig(steps=4, batch=2, max_prompts=8, checkpoint_every=0)),
                tmp_path / "cache")
    before = len(s.step.data.pairs)
    s.adversary.round(s, 1)
    prompts, _ = s.adversary._prompts(s.step.data)
    assert len(prompts) > 0 and len(s.step.data.pairs) == before + len(prompts)
    assert all("<duge-attack-0>" in p and "church" not in p for p in prompts)
    out = tmp_path / "r"
    assert main(["train", "--base", tiny_sd, "--concept", "church", "--kind", "object", "--robust", "--steps", "2",
                 "--batch", "2", "--max-prompts", "8", "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hyperparameters"]["adversarial_rounds"] == adversarial.ROUNDS


def test_a_ceiling_under_the_floor_stops_the_attack(tiny_sd, tiny_judge, monkeypatch, capsys):
    """A concept the base cannot be made to draw (its ceiling under CEILING_FLOOR; raised here so that any ceiling
    is under it): one sentence and a non-zero exit."""
    from duge_lora import attack

    monkeypatch.setattr(attack, "CEILING_FLOOR", 1.01)
    assert main(["attack", "--base", tiny_sd, "--concept", "church", "--judge", tiny_judge, "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "cannot be made to draw it either" in err and "Traceback" not in err


def test_the_concepts_images_are_cached_by_the_model_that_draws_them(tmp_path):
    """The adversarial rounds draw the concept with theta_{k-1} (parents merged into the base): its images must not
    be the base's from the cache. The key is the loaded UNet's hash (merges included), not the base's identity."""
    import torch

    from duge_lora.attack import concept_latents
    from duge_lora.attack_plan import toy_plan
    from duge_lora.compose import apply_to_base
    from duge_lora.models import load_base

    from dataclasses import replace

    base, plan = load_base("toy", device="cpu"), toy_plan("circle")
    plan = replace(plan, prompts=plan.prompts[:4])      # a few of its scenes: the key is what is tested
    drawn = concept_latents(base, plan, 0, tmp_path)
    fp = base.fingerprint
    apply_to_base(base, [ADAPTER])                     # theta_1: circle erased
    erased = concept_latents(base, plan, 0, tmp_path)
    assert base.fingerprint == fp and not torch.equal(drawn, erased)
    assert len(list((tmp_path / "data").glob("*.safetensors"))) == 2
    assert torch.equal(concept_latents(load_base("toy", device="cpu"), plan, 0, tmp_path), drawn)   # a cache hit
