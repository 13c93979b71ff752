"""The repair option (`train --repair`, repair.py (repair.py): L_pp / L_replay read the base theta_0 on the preserve and replay
rows that name no erased concept, theta_{k-1} on the others; theta_0 comes from the held base weights, swapped in
for one pass, and checked here against a second, separately loaded base."""
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from duge_lora.adversarial import robust_preset
from duge_lora.models import load_base
from duge_lora.records import resolve_adapter
from duge_lora.repair import erased_words, repaired_rows
from duge_lora.train import TrainConfig, prepare
from duge_lora.trainset import TrainData, anchor_pairs, clean_first, sample_batch
from duge_lora.worlds.toy import TOY
from duge_lora_cli.main import main

CIRCLE = Path(__file__).parent.parent / "adapters" / "toy" / "circle"


def test_rows_naming_an_erased_concept_or_a_synonym_are_not_repaired():
    words = erased_words([TOY.make_request("circle"), TOY.make_request("red")])
    rows = repaired_rows(["a red square", "a blue disc", "a Circle", "a green circled square", "a blue square",
                          "a reddish star"], words)
    assert rows.tolist() == [False, False, False, True, True, True]


def test_the_repaired_rows_get_theta_0_and_the_others_keep_theta_k_minus_1(data_cache):
    base = load_base("toy", "cpu")
    cfg = replace(robust_preset(TrainConfig(steps=2, batch=4, max_prompts=16, checkpoint_every=0), targets_given=True),
                  repair=True)
    s = prepare(base, TOY.make_request("red"), [resolve_adapter(CIRCLE)], cfg, data_cache)
    st = s.step
    assert st.repair is not None and st.repair.base.names          # the circle adapter's modules are held
    x0, _, e_ref, seg = sample_batch(st.data, st.objective.segments, st.batch, torch.Generator().manual_seed(0))
    t = torch.full((len(x0),), 400)
    xt = st.scheduler.add_noise(x0, torch.randn(x0.shape, generator=torch.Generator().manual_seed(1)), t)
    with torch.no_grad():
        st.unet.disable_adapters()
        before = st.unet(xt, t, encoder_hidden_states=st.data.emb[e_ref]).sample
        st.unet.enable_adapters()
    out = st.repair.reference(st, xt, t, e_ref, seg, before)
    rows = st.repair.batch_rows(e_ref, seg)
    names = [st.data.prompts[e_ref[r]] for r in range(len(e_ref))]
    assert rows and all(not any(w in names[r] for w in ("red", "circle", "disc")) for r in rows)
    assert set(range(seg["preserve"].start, seg["replay"].stop)) - set(rows)   # some kept rows name red or circle
    with torch.no_grad():
        theta_0 = load_base("toy", "cpu").pipe.unet(xt, t, encoder_hidden_states=st.data.emb[e_ref]).sample
    other = [r for r in range(len(e_ref)) if r not in rows]
    assert torch.allclose(out[rows], theta_0[rows], atol=1e-5)
    assert not torch.allclose(before[rows], theta_0[rows], atol=1e-3)  # the circle adapter moved them
    assert torch.equal(out[other], before[other])
    with torch.no_grad():                                               # theta_{k-1} is back after the pass
        st.unet.disable_adapters()
        again = st.unet(xt, t, encoder_hidden_states=st.data.emb[e_ref]).sample
        st.unet.enable_adapters()
    assert torch.equal(again, before)


def test_the_first_request_and_runs_without_the_option_have_no_repair(data_cache):
    robust = robust_preset(TrainConfig(steps=2, batch=2, max_prompts=8, checkpoint_every=0))
    assert robust.repair and not TrainConfig().repair               # the robust preset's; off without it
    assert not robust_preset(TrainConfig(), repair_given=True).repair   # the user's choice wins over the preset
    first = robust
    assert prepare(load_base("toy", "cpu"), TOY.make_request("circle"), [], first, data_cache).step.repair is None
    plain = TrainConfig(steps=2, batch=2, max_prompts=8, checkpoint_every=0)     # the circle adapter's k, v
    s = prepare(load_base("toy", "cpu"), TOY.make_request("red"), [resolve_adapter(CIRCLE)], plain, data_cache)
    assert s.step.repair is None


def test_train_repair_records_it(tmp_path):
    out = tmp_path / "red"
    assert main(["train", "--concept", "red", "--after", str(CIRCLE), "--repair", "--steps", "2", "--batch", "2",
                 "--max-prompts", "8", "-o", str(out), "--json"]) == 0
    assert json.loads((out / "duge.json").read_text())["hyperparameters"]["repair"] == "theta_0"


@pytest.mark.parametrize("method", ["esd", "uce"])
def test_repair_with_a_method_without_preserve_rows_is_refused(method, tmp_path, capsys):
    assert main(["train", "--concept", "circle", "--method", method, "--repair", "--steps", "2",
                 "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--repair" in err and method in err and "Traceback" not in err and not (tmp_path / "x").exists()


def test_clean_first_keeps_every_clean_replay_prompt_and_samples_the_rest():
    erased = erased_words([TOY.make_request("circle"), TOY.make_request("red")])
    named = [f"a red square {i}" for i in range(10)] + [f"a circle {i}" for i in range(10)]
    clean = [f"a blue square {i}" for i in range(5)]
    replay = named[:7] + clean + named[7:]
    got = clean_first(replay, erased, 0, 12)
    assert got[:5] == clean and len(got) == 12 and set(got[5:]) <= set(named)
    assert got == clean_first(replay, erased, 0, 12) and got != clean_first(replay, erased, 1, 12)   # seeded
    assert clean_first(replay, erased, 0, 40) == replay              # all fit: unchanged
    assert clean_first(replay, erased, 0, 4) == replay               # the clean ones alone fill it: sampled as usual


def test_own_share_draws_that_share_of_anchor_rows_from_the_requests_own_pairs():
    data = TrainData(torch.zeros(30, 1), [(i, i, i) for i in range(30)], torch.zeros(0), [], torch.zeros(0), [],
                     torch.zeros(30, 1, 1), {}, own=6)                # 6 own pairs, 24 added by the rounds
    idx = anchor_pairs(data, 8, torch.Generator().manual_seed(0), 0.5)
    assert all(i < 6 for i in idx[:4]) and all(i >= 6 for i in idx[4:])
    alike = [anchor_pairs(data, 8, torch.Generator().manual_seed(s), 0.0) for s in range(20)]
    assert sum(i < 6 for xs in alike for i in xs) < 60               # drawn alike: about a fifth own (32 of 160)
    before = TrainData(data.anchor_x, data.pairs[:6], *([torch.zeros(0), [], torch.zeros(0), [], data.emb, {}]), own=6)
    assert anchor_pairs(before, 8, torch.Generator().manual_seed(0), 0.5) == \
        torch.randint(0, 6, (8,), generator=torch.Generator().manual_seed(0)).tolist()   # no rounds yet: as usual
    with pytest.raises(Exception, match="outside"):
        TrainConfig(own_share=1.0)


def test_clean_replay_keeps_the_clean_replay_prompts_for_the_repair(data_cache):
    # red after circle: 63 replay prompts, 48 of them name neither; 56 drawn
    cfg = robust_preset(TrainConfig(steps=2, batch=2, max_prompts=56, checkpoint_every=0), targets_given=True)  # circle's k, v
    assert cfg.clean_replay and cfg.own_share == 0.9                   # the preset's
    cfg = replace(cfg, own_share=0.5)
    s = prepare(load_base("toy", "cpu"), TOY.make_request("red"), [resolve_adapter(CIRCLE)], cfg, data_cache)
    erased = erased_words([TOY.make_request("red"), TOY.make_request("circle")])
    replay = [s.step.data.prompts[e] for e in s.step.data.replay_e]
    plain = prepare(load_base("toy", "cpu"), TOY.make_request("red"), [resolve_adapter(CIRCLE)],
                    replace(cfg, clean_replay=False), data_cache)
    before = [plain.step.data.prompts[e] for e in plain.step.data.replay_e]
    clean = sum(not erased.search(p) for p in replay)
    assert len(replay) == len(before) == 56 and clean == 48 > sum(not erased.search(p) for p in before)
    assert s.step.own_share == 0.5 and s.step.data.own == len(s.step.data.pairs)
