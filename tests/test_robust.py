"""train --robust (adversarial.py): adversarial rounds of the recovery attack during training; what they add to the
data, the preset, resuming across rounds, and bad input. The inner attack's budget is lowered here for speed (its
default is the bench's attack, 150 steps; docs/benchmarks.md measures that)."""
import json

import pytest
import torch
from safetensors.torch import load_file

from duge_lora import adversarial
from duge_lora.adversarial import robust_preset, schedule
from duge_lora.checkpoint import partial_dir
from duge_lora.errors import DugeError, TrainingStopped
from duge_lora.models import load_base
from duge_lora.train import TrainConfig, prepare, train_adapter
from duge_lora.worlds.toy import TOY
from duge_lora_cli.main import main


@pytest.fixture(autouse=True)
def short_attack(monkeypatch):
    monkeypatch.setattr(adversarial, "ATTACK_STEPS", 5)


def test_schedule_spreads_the_rounds_and_skips_step_0():
    assert schedule(100, 4) == [20, 40, 60, 80]
    assert schedule(3, 4) == [1, 2] and schedule(1, 1) == [1]


def test_a_round_adds_one_pair_per_target_prompt_with_the_learned_word(tmp_path, data_cache):
    base = load_base("toy", "cpu")
    req = TOY.make_request("circle")
    cfg = robust_preset(TrainConfig(steps=4, batch=2, max_prompts=8, checkpoint_every=0))
    s = prepare(base, req, [], cfg, data_cache)
    pairs, rows = list(s.step.data.pairs), len(s.step.data.emb)
    s.adversary.round(s, 1)
    added = s.step.data.pairs[len(pairs):]
    assert 0 < len(added) <= len(pairs)
    assert all(a in {p[0] for p in pairs} for a, _, _ in added)          # paired with the request's anchors
    assert [e for _, e, _ in added] == list(range(rows, rows + len(added)))
    assert all(p.requires_grad for p in s.params)
    prompts, _ = s.adversary._prompts(s.step.data)
    assert all("<duge-attack-0>" in p and "circle" not in p and "disc" not in p for p in prompts)


def test_an_interruption_stops_a_round_after_one_attack_step_and_adds_nothing(data_cache):
    """Ctrl-C held by step_boundaries is raised inside the round (after the first of its 150 attack steps), not
    after the whole inner attack; the round's pairs are not added, so the checkpoint of whole steps stays exact."""
    base = load_base("toy", "cpu")
    cfg = robust_preset(TrainConfig(steps=4, batch=2, max_prompts=8, checkpoint_every=0))
    s = prepare(base, TOY.make_request("circle"), [], cfg, data_cache)
    pairs, calls = list(s.step.data.pairs), []

    def check():
        calls.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        s.adversary.round(s, 1, check)
    assert len(calls) == 1 and s.step.data.pairs == pairs and not s.adversary.added


def test_robust_training_records_its_preset(tmp_path, capsys):
    out = tmp_path / "a"
    assert main(["train", "--concept", "circle", "--robust", "--steps", "3", "--batch", "2", "-o", str(out), "--json"]) == 0
    r = json.loads((out / "duge.json").read_text())
    assert r["hyperparameters"]["adversarial_rounds"] == adversarial.ROUNDS
    assert r["lora"]["targets"] == ["k", "v", "out", "ff-low"] and r["loss_weights"]["pp"] == 5.0
    assert r["hyperparameters"]["repair"] == "theta_0"                       # the preset's repair toward the base
    assert r["hyperparameters"]["own_share"] == adversarial.OWN_SHARE == 0.9 and r["hyperparameters"]["replay"] == "clean first"
    assert "ff.net.2 only below the latent's full resolution" in (out / "README.md").read_text()   # the model card
    keys = list(load_file(str(out / "pytorch_lora_weights.safetensors")))
    assert any("attn2.to_out" in k for k in keys) and any(".ff.net.2." in k for k in keys)
    assert r["loss_weights"]["keep_attn"] == adversarial.WEIGHTS["keep_attn"] == 15.0
    # what the user gives wins over the preset
    assert main(["train", "--concept", "circle", "--robust", "--steps", "2", "--batch", "2", "--targets", "k,v",
                 "--weight", "pp=2", "--no-repair", "-o", str(tmp_path / "b"), "--json"]) == 0
    r = json.loads((tmp_path / "b" / "duge.json").read_text())
    assert "repair" not in r["hyperparameters"] and "replay" not in r["hyperparameters"]   # clean replay goes with it
    assert r["lora"]["targets"] == ["k", "v"] and r["loss_weights"]["pp"] == 2.0 and r["loss_weights"]["keep"] == 5.0


def test_a_run_stopped_after_a_round_resumes_to_the_same_adapter(tmp_path, data_cache):
    cfg = robust_preset(TrainConfig(steps=6, batch=2, max_prompts=4, checkpoint_every=3))
    req = TOY.make_request("star")
    straight = tmp_path / "straight"
    train_adapter(load_base("toy", "cpu"), req, [], cfg, straight, cache=data_cache)

    def interrupt(stage, step, total, info):
        if stage == "train" and step == 4:
            raise KeyboardInterrupt
    out = tmp_path / "resumed"
    with pytest.raises(TrainingStopped):
        train_adapter(load_base("toy", "cpu"), req, [], cfg, out, cache=data_cache, progress=interrupt)
    kept = load_file(str(partial_dir(out) / "checkpoint.safetensors"))
    assert "adv.states" in kept and kept["adv.pairs"].shape[1] == 3          # rounds 1 and 2 happened before it
    train_adapter(load_base("toy", "cpu"), req, [], cfg, out, cache=data_cache, resume=True)
    a, b = (load_file(str(p / "pytorch_lora_weights.safetensors")) for p in (straight, out))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("argv, says", [
    (["--method", "uce", "--robust"], "closed form"),
    (["--robust", "--num-processes", "2", "--batch", "2"], "one process"),
])
def test_bad_robust_input(argv, says, tmp_path, capsys):
    assert main(["train", "--concept", "circle", "--steps", "2", *argv, "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and not (tmp_path / "x").exists()


def test_rounds_out_of_range_are_refused():
    with pytest.raises(DugeError, match="adversarial"):
        TrainConfig(adversarial=21)
