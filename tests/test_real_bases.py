"""The generic path on tiny random SD 1.x and SD 2.x (v-prediction) pipelines built here: two chained requests
train, compose (merged == the live stack) and are evaluated with a tiny random CLIP judge and classifier judge."""
import json

import pytest
import torch

from duge_lora.losses import regression_target
from duge_lora.worlds.generic import GenericWorld, read_prompts
from duge_lora.worlds.kinds import DEFAULT_ANCHOR, guess_kind
from duge_lora_cli.main import main
from tiny import build_tiny_classifier, build_tiny_clip

from tiny import TINY_WORDS

STEPS = ["--steps", "3", "--batch", "2", "--gen-batch", "16", "--max-prompts", "8"]


@pytest.fixture(scope="module")
def judges(tmp_path_factory):
    root = tmp_path_factory.mktemp("judges")
    return {"clip": build_tiny_clip(root / "clip", TINY_WORDS), "classifier": build_tiny_classifier(root / "cls")}


@pytest.mark.parametrize("layout", ["sd1", "sd2"])
def test_two_chained_requests_train_compose_and_evaluate(layout, tiny_sd, tiny_sd2, judges, tmp_path, capsys):
    base = tiny_sd if layout == "sd1" else tiny_sd2
    a1, a2, model = tmp_path / "a1", tmp_path / "a2", tmp_path / "model.safetensors"
    # the first request names its kind; the second is chained with --after, has no --preserve (the KeyError
    # case) and a guessed kind. Both are classes of the tiny classifier, so both judges can measure them.
    assert main(["train", "--base", base, "--concept", "garbage truck", "--kind", "object", "--preserve", "a dog",
                 "-o", str(a1), "--json", *STEPS]) == 0
    r1 = json.loads(capsys.readouterr().out)
    assert r1["request"]["axis"] == "object" and r1["request"]["anchor"] == DEFAULT_ANCHOR["object"]
    assert main(["train", "--base", base, "--concept", "church", "--after", str(a1), "-o", str(a2), "--json", *STEPS,
                 "--judge", judges["clip"]]) == 0
    cap = capsys.readouterr()
    r2 = json.loads(cap.out)
    assert "note: kind: object (not in the built-in list, so guessed); pass --kind" in cap.err
    # with a judge, train reads theta_1's anchor images and records how many show the target
    assert 0.0 <= r2["data"]["anchor_read_as_target"] <= 1.0 and "anchor_read_as_target" not in r1["data"]
    assert r2["request"]["axis"] == "object" and "kind" in r2["request"]["defaults"]
    assert [p["concept"] for p in r2["parents"]] == ["garbage truck"]
    assert main(["compose", str(a1), str(a2), "--base", base, "-o", str(model), "--json"]) == 0
    comp = json.loads(capsys.readouterr().out)
    assert comp["max_abs_diff"] <= 1e-5           # the merged file vs the live peft stack, on probe inputs
    for kind, judge in judges.items():
        assert main(["eval", "--base", base, "--adapters", str(a1), str(a2), "--judge", judge, "-n", "1",
                     "--gen-batch", "16", "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        assert r["judge"] == judge and [t["concept"] for t in r["targets"]] == ["garbage truck", "church"]
        for key in ("mean_ua", "ua", "ua_prev", "cra"):
            assert 0.0 <= r[key] <= 1.0, (kind, key)
        assert r["mean_ua"] == pytest.approx((r["targets"][0]["ua"] + r["targets"][1]["ua"]) / 2, abs=1e-4)
        assert r["ua_prev"] == r["targets"][0]["ua"] and r["ua"] == r["targets"][1]["ua"]
        # IRA: the related concepts; the classifier has no class "a dog", so it measures none of them
        assert (r["ira"] is None) == (kind == "classifier")
        assert (kind == "classifier") == (r["clip_score"] is None) and r["n_images"] == r["n_prompts"]


def test_classifier_judge_refuses_a_concept_it_has_no_class_for(tiny_sd, judges, capsys):
    code = main(["eval", "--base", tiny_sd, "--concept", "chruch", "--judge", judges["classifier"], "-n", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "church" in err and "Traceback" not in err


def test_eval_on_a_real_base_without_judge_says_what_to_pass(tiny_sd, capsys):
    code = main(["eval", "--base", tiny_sd, "--concept", "cat", "-n", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--judge" in err and "Traceback" not in err


def test_v_prediction_target_is_the_schedulers_velocity():
    from diffusers import DDPMScheduler

    for kind in ("epsilon", "v_prediction"):
        s = DDPMScheduler(prediction_type=kind, beta_schedule="scaled_linear")
        g = torch.Generator().manual_seed(0)
        x0, noise = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
        t = torch.tensor([0, 10, 500, 999])
        got = regression_target(s, x0, noise, t)
        want = s.get_velocity(x0, noise, t) if kind == "v_prediction" else noise
        assert torch.equal(got, want)
        if kind == "v_prediction":        # v = sqrt(abar) noise - sqrt(1 - abar) x0, written out
            abar = s.alphas_cumprod[t].view(-1, 1, 1, 1)
            assert torch.allclose(got, abar.sqrt() * noise - (1 - abar).sqrt() * x0, atol=1e-6)
            assert not torch.allclose(got, noise)


def test_kinds_templates_and_prompt_files(tmp_path):
    assert guess_kind("Van Gogh")[0] == "style" and guess_kind("Mickey Mouse")[0] == "character"
    assert guess_kind("nudity")[0] == "nsfw" and guess_kind("a garbage truck")[0] == "object"
    w = GenericWorld()
    req = w.make_request("Van Gogh")
    assert req.axis == "style" and "kind" in req.defaults and req.anchor == DEFAULT_ANCHOR["style"]
    sets = w.prompt_sets(req, [])
    assert "a painting by Van Gogh" in sets.target and "a painting by an anonymous painter" in sets.anchor
    assert sets.preserve and all("Van Gogh" not in p for p in sets.preserve + sets.anchor)
    later = w.make_request("Claude Monet", kind="style", earlier=[req])
    sets2 = w.prompt_sets(later, [req])
    assert "a painting by Van Gogh" in sets2.protect and "Claude Monet" not in later.preserve
    good = tmp_path / "p.txt"
    good.write_text("# mine\na photo of {} at night\n\n{} on a poster\n")
    req3 = w.make_request("Snoopy", templates=read_prompts(good))
    assert w.prompt_sets(req3, []).target == ["a photo of Snoopy at night", "Snoopy on a poster"]
    assert json.loads(json.dumps(req3.to_dict()))["templates"] == ["a photo of {} at night", "{} on a poster"]


@pytest.mark.parametrize("text, says", [("", "no prompts"), ("# only a comment\n", "no prompts"),
                                        ("a photo of a dog\n", "has no {}"), ("{} and {}\n", "has no {}")])
def test_bad_prompt_files_are_refused(tmp_path, tiny_sd, text, says, capsys):
    f = tmp_path / "p.txt"
    f.write_text(text)
    code = main(["train", "--base", tiny_sd, "--concept", "cat", "--prompts", str(f), "-o", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 3 and says in err and "Traceback" not in err and not (tmp_path / "a").exists()


def test_a_concept_split_into_many_pieces_warns(tiny_sd, tmp_path, capsys):
    code = main(["train", "--base", tiny_sd, "--concept", "xylophonist", "--steps", "1", "--gen-batch", "16",
                 "-o", str(tmp_path / "a"), "--json"])
    err = capsys.readouterr().err
    assert code == 0 and "splits 'xylophonist' into" in err


def test_fp16_base_trains_fp32_lora_and_merges_through_fp32(tiny_sd):
    """An fp16 base (on the CPU, where these fp16 ops exist): the trained factors are fp32, and adding a LoRA
    delta into an fp16 weight equals the fp32 merge rounded once."""
    from duge_lora.adapter import LoraSpec, attach, factors
    from duge_lora.merge import add_delta, delta_w
    from duge_lora.models import load_base
    from duge_lora.train import cast_training_params

    b = load_base(tiny_sd, "cpu", dtype=torch.float16)
    unet = b.pipe.unet
    attach(unet, LoraSpec(rank=2), "t")
    assert {p.dtype for n, p in unet.named_parameters() if ".t." in n} == {torch.float16}    # peft follows the base
    cast_training_params(unet, "t")
    assert {p.dtype for n, p in unet.named_parameters() if ".t." in n} == {torch.float32}
    assert {p.dtype for n, p in unet.named_parameters() if ".t." not in n} == {torch.float16}
    name, (a, b_) = next(iter(factors(unet, "t").items()))
    with torch.no_grad():
        b_.normal_(0, 1e-3)
    w = dict(unet.named_modules())[name].base_layer.weight
    delta = delta_w(a, b_, 1.0)
    merged = add_delta(w, delta)
    assert merged.dtype == torch.float16
    assert torch.equal(merged, (w.float() + delta.float()).half())


def test_bench_on_a_real_base_with_a_judge(tiny_sd2, judges, tmp_path, capsys):
    """The bench's whole path on a v-prediction base, measured by the CLIP judge: per-step keys, erosion and FD
    against the base, the attack and its ceiling, the report files."""
    out = tmp_path / "b"
    args = ["bench", "--quick", "--base", tiny_sd2, "--judge", judges["clip"], "--sequence", "garbage truck,church",
            "--methods", "duge,uce", "--ablation", "none", "--steps", "2", "--attack-steps", "3", "--workers", "1", "-o",
            str(out), "--json"]
    assert main(args) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["base"] == tiny_sd2 and r["config"]["judge"] == judges["clip"]
    for name in ("duge", "uce"):
        steps = r["methods"][name]["steps"]
        assert [s["target"] for s in steps] == ["garbage truck", "church"]
        for s in steps:
            for key in ("ua", "mean_ua", "ira", "cra", "erosion", "fd", "clip_score"):
                assert s[key] is not None, (name, key)
        assert steps[0]["ua_prev"] is None and steps[1]["ua_prev"] == steps[1]["targets"][0]["ua"]
        assert steps[1]["non_target_images"] == steps[0]["non_target_images"] > 0
        # the attack after the last request: each request's templates, read by the judge (attack_plan.py)
        assert "recovered" not in steps[0] and set(steps[1]["recovered_targets"]) == {"garbage truck", "church"}
        assert 0.0 <= steps[1]["recovered"] <= 1.0
    assert set(r["base"]["ceiling_targets"]) == {"garbage truck", "church"} and r["base"]["attack_steps"] == 3
    assert (out / "grids" / "attacked.png").exists()
    assert "related" in r["base"]["accuracy"] and (out / "grids" / "duge.png").exists() and (out / "index.html").exists()
    capsys.readouterr()
    # a real base needs a judge, and its own sequence
    assert main(["bench", "--quick", "--base", tiny_sd2, "--sequence", "church", "-o", str(tmp_path / "c")]) == 2
    assert "--judge" in capsys.readouterr().err
    assert main(["bench", "--quick", "--base", tiny_sd2, "--judge", judges["clip"], "-o", str(tmp_path / "d")]) == 2
    assert "--sequence" in capsys.readouterr().err and not (tmp_path / "d").exists()


@pytest.mark.parametrize("argv", [["train", "--concept", "circle", "-o", "{t}/a"], ["eval", "-n", "1"],
                                  ["sample", "circle", "-o", "{t}/g.png"], ["compose", "{a}", "-o", "{t}/m.safetensors"],
                                  ["bench", "--quick", "-o", "{t}/b"]])
def test_device_and_precision_options_behave_the_same_in_every_command(argv, tmp_path, capsys):
    """--device, --mixed-precision and --base are one rule across train, eval, sample, compose and bench."""
    from pathlib import Path

    argv = [a.format(t=tmp_path, a=Path(__file__).parent.parent / "adapters" / "toy" / "circle") for a in argv]
    messages = []
    for extra in (["--mixed-precision", "fp16", "--device", "cpu"], ["--mixed-precision", "fp8"], ["--device", "tpu"],
                  ["--base", str(tmp_path)]):
        code = main(argv + extra)
        messages.append((code, capsys.readouterr().err.strip().splitlines()[-1]))
    assert [c for c, _ in messages] == [2, 2, 2, 3], messages
    assert "fp16 needs a GPU" in messages[0][1] and "'fp8' is not one of auto, no, fp16, bf16" in messages[1][1]
    assert "tpu" in messages[2][1] and "model_index.json" in messages[3][1]
    assert list(tmp_path.iterdir()) == []


def test_an_fp16_base_trains_on_the_cpu_with_fp32_factors(tiny_sd, tmp_path):
    """fp16 frozen weights, fp32 LoRA, fp32 losses (inputs cast to the UNet's dtype, outputs back to fp32)."""
    import math

    from duge_lora.models import load_base
    from duge_lora.records import resolve_adapter
    from duge_lora.train import TrainConfig, train_adapter

    b = load_base(tiny_sd, "cpu", dtype=torch.float16)
    req = b.world.make_request("cat", kind="object")
    rec = train_adapter(b, req, [], TrainConfig(steps=2, batch=2, max_prompts=4, checkpoint_every=0), tmp_path / "a")
    assert rec.final_losses and all(math.isfinite(v) for v in rec.final_losses.values())
    assert {t.dtype for pair in resolve_adapter(tmp_path / "a").weights.values() for t in pair} == {torch.float32}
    assert b.pipe.unet.conv_in.weight.dtype == torch.float16
