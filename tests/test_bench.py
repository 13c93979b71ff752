"""`duge-lora bench` end to end on a 2-request sequence with 2 methods, two real worker processes; resume; errors."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from duge_lora.bench_config import ABLATIONS, MAX_SCENE_FRACTION, BenchConfig, eval_scenes, probe_rows, runs_of
from duge_lora.losses import DEFAULT_WEIGHTS
from duge_lora_cli.main import main

ARGS = ["bench", "--quick", "--sequence", "circle,red", "--methods", "duge,uce", "--ablation", "no-reg",
        "--steps", "8", "--workers", "2", "--seeds", "0,1", "--seeded", "uce", "--attack-steps", "10",
        "--scene-fraction", "8"]
KEYS = {"step", "target", "ua", "ua_prev", "ira", "cra", "erosion", "fd", "seconds", "peak_mb"}


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b"
    assert main(ARGS + ["-o", str(out), "--json"]) == 0
    return out


def test_results_json_has_every_method_and_step(bench_dir):
    r = json.loads((bench_dir / "results.json").read_text())
    assert set(r["methods"]) == {"duge", "uce"} and set(r["ablation"]) == {"duge-no-reg"}
    assert r["command"].startswith("duge-lora bench --quick --sequence circle,red") and r["date"][:4].isdigit() and r["machine"]["cores"] >= 1
    for name, entry in r["methods"].items():
        steps = entry["steps"]
        assert [s["step"] for s in steps] == [1, 2] and [s["target"] for s in steps] == ["circle", "red"]
        for s in steps:
            assert KEYS <= set(s), (name, KEYS - set(s))
            for k in ("ua", "ira", "cra"):
                assert 0.0 <= s[k] <= 1.0
            assert s["fd"] >= 0.0 and s["peak_mb"] > 100 and s["seconds"] >= 0
            # the composed stack (compose's sum) is the model training ended with
            assert s["compose_max_abs_diff"] <= 1e-5
        assert steps[0]["ua_prev"] is None and steps[1]["ua_prev"] is not None
    # the closed-form edit erases the circle on the toy world (measured: 100%), and keeps the other objects
    uce = r["methods"]["uce"]["steps"]
    assert uce[0]["ua"] >= 0.9 and uce[0]["ira"] >= 0.9
    # the ablation variant is judged after the last request only
    abl = r["ablation"]["duge-no-reg"]["steps"]
    assert "ua" not in abl[0] and "ua" in abl[1]
    assert set(r["base"]["accuracy"]) == {"object", "color", "style", "character"}
    # uce ran both seeds: the steps are their mean, with each seed's rows and the last step's spread beside them
    entry, duge = r["methods"]["uce"], r["methods"]["duge"]
    assert entry["seeds"] == [0, 1] and duge["seeds"] == [0] and "sd" not in duge
    finals = [seed_steps[-1] for seed_steps in entry["per_seed"]]
    assert entry["steps"][-1]["mean_ua"] == pytest.approx(np.mean([f["mean_ua"] for f in finals]))
    assert entry["sd"]["mean_ua"] == pytest.approx(np.std([f["mean_ua"] for f in finals], ddof=1))
    assert set(entry["sd"]["targets"]) == {"circle", "red"}
    # the second seed is judged after the last request only: step 1 is the first seed's, step 2 the mean of both
    assert "ua" not in entry["per_seed"][1][0] and "ua" in entry["per_seed"][1][1]
    assert [s["judged_seeds"] for s in entry["steps"]] == [1, 2]
    assert entry["steps"][0]["mean_ua"] == entry["per_seed"][0][0]["mean_ua"]


def test_report_files(bench_dir):
    md = (bench_dir / "results.md").read_text()
    assert "| duge | 1 |" in md and "| uce | 2 |" in md and "Ablation" in md and "erosion" in md
    assert "Every target's UA after request 2" in md and "±" in md
    for metric in ("ua", "ira", "cra", "erosion", "fd", "seconds", "overview"):
        with Image.open(bench_dir / "plots" / f"{metric}.png") as im:
            assert im.size[0] > 300
    cfg = BenchConfig.quick(sequence=("circle", "red"), methods=("duge", "uce"), ablation=("no-reg",), steps=8,
                            scene_fraction=8)
    rows = len(probe_rows(cfg))
    for name in ("duge", "uce", "duge-no-reg"):
        with Image.open(bench_dir / "grids" / f"{name}.png") as im:
            assert im.size[1] > rows * 96            # one row per probe prompt
    html = (bench_dir / "index.html").read_text()
    for src in ("plots/overview.png", "grids/duge.png", "plots/fd.png"):
        assert src in html and (bench_dir / src).exists()


def test_the_attack_after_the_last_request(bench_dir):
    """Each method's targets are attacked after the last request (not before, not the ablation variants), the base
    once per seed (the ceiling); results.md, plots/recovered.png, grids/attacked.png and index.html show it."""
    r = json.loads((bench_dir / "results.json").read_text())
    for name, entry in r["methods"].items():
        first, last = entry["steps"]
        assert "recovered" not in first or first["recovered"] is None
        assert 0.0 <= last["recovered"] <= 1.0 and set(last["recovered_targets"]) == {"circle", "red"}
        assert last["recovered"] == pytest.approx(np.mean(list(last["recovered_targets"].values())), abs=1e-4)
        assert last["attack_seconds"] > 0
    assert "recovered" not in r["ablation"]["duge-no-reg"]["steps"][-1]
    uce = r["methods"]["uce"]
    assert uce["steps"][-1]["attacked_seeds"] == 2 and uce["sd"]["recovered"] is not None
    assert set(uce["sd"]["recovered_targets"]) == {"circle", "red"}
    base = r["base"]
    assert base["attack_steps"] == 10 and set(base["ceiling_targets"]) == {"circle", "red"} and base["ceiling"] > 0
    for seed in (0, 1):
        info = json.loads((bench_dir / "base" / f"attack-seed-{seed}.json").read_text())
        assert info["seed"] == seed and info["steps"] == 10
    md = (bench_dir / "results.md").read_text()
    assert "| recovered |" in md and "## Concept recovery: the attack after request 2" in md and "| base (ceiling) |" in md
    with Image.open(bench_dir / "plots" / "recovered.png") as im:
        assert im.size[0] > 300
    with Image.open(bench_dir / "grids" / "attacked.png") as im:
        assert im.size[1] > 3 * 96                     # the base, then duge and uce
    html = (bench_dir / "index.html").read_text()
    assert "plots/recovered.png" in html and "grids/attacked.png" in html
    images = np.load(bench_dir / "runs" / "duge" / "seed-0" / "attack-02.npy")
    assert images.shape[0] == 2 and images.dtype == np.uint8


def test_resume_skips_finished_steps_and_reproduces_a_lost_one(bench_dir, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(bench_dir, out)
    folder = out / "runs" / "duge" / "seed-0"
    before = json.loads((folder / "step-02.json").read_text())
    mtime = (folder / "01-circle" / "pytorch_lora_weights.safetensors").stat().st_mtime_ns
    (folder / "step-02.json").unlink()                  # as if interrupted while judging step 2
    assert main(ARGS + ["-o", str(out), "--workers", "1", "--json"]) == 0
    after = json.loads((folder / "step-02.json").read_text())
    assert (folder / "01-circle" / "pytorch_lora_weights.safetensors").stat().st_mtime_ns == mtime   # not retrained
    for k in ("ua", "ua_prev", "ira", "cra", "erosion"):
        assert after[k] == before[k], k
    # two worker threads here vs one per worker process before: the features differ in the last float bits
    assert after["fd"] == pytest.approx(before["fd"], rel=1e-6)
    assert np.array_equal(np.load(folder / "probe-02.npy"), np.load(bench_dir / "runs/duge/seed-0/probe-02.npy"))


def test_resume_refuses_an_adapter_trained_otherwise(bench_dir, tmp_path, capsys):
    """A finished adapter whose duge.json records other settings (as an earlier version's preset would) is not
    reused: the chain would mix the two. Nothing is written."""
    out = tmp_path / "copy"
    shutil.copytree(bench_dir, out)
    record = out / "runs" / "duge" / "seed-0" / "02-red" / "duge.json"
    d = json.loads(record.read_text())
    d["lora"]["targets"] = [*d["lora"]["targets"], "out"]
    record.write_text(json.dumps(d))
    (out / "runs" / "duge" / "seed-0" / "step-02.json").unlink()
    assert main(ARGS + ["-o", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "02-red was trained with other settings (lora)" in err and "--overwrite" in err and "Traceback" not in err
    assert not (out / "runs" / "duge" / "seed-0" / "step-02.json").exists()


def test_bench_refuses_other_settings_in_the_same_folder(bench_dir, capsys):
    assert main(["bench", "--quick", "--sequence", "circle,red", "--methods", "duge", "--ablation", "none",
                 "--steps", "8", "-o", str(bench_dir)]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "Traceback" not in err


@pytest.mark.parametrize("args, words", [
    (["--methods", "duge,magic"], "Unknown method 'magic'"),
    (["--sequence", "circle,unicorn"], "not in the toy model's vocabulary"),
    (["--sequence", "circle,circle"], "appears twice"),
    (["--ablation", "no-fun"], "Unknown ablation variant"),
    (["--ablation", "no-drift"], "would be DUGE itself"),
    (["--seeds", "one"], "not a comma-separated list of integers"),
    (["--attack-steps", "1000000"], "--attack-steps 1000000 is outside"),
    (["--scene-fraction", "9"], "--scene-fraction 9 is outside 1..8"),
    (["--sequence", "solid,outlined,striped"], "Every concept that could stand in for 'striped'"),
])
def test_bad_bench_options_are_one_sentence(args, words, tmp_path, capsys):
    assert main(["bench", "--quick", *args, "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()              # nothing written before the checks pass


def test_runs_and_quick_scenes():
    cfg = BenchConfig()
    keys = [r.key for r in runs_of(cfg)]
    assert cfg.seeded == ("duge", "duge-robust", "uce")
    assert sorted(keys) == sorted([f"{m}/seed-{s}" for m in cfg.methods for s in (cfg.seeds if m in cfg.seeded else (0,))]
                                  + [f"duge-{v}/seed-0" for v in cfg.ablation])
    assert cfg.seeds == (0, 1, 2) and keys[0].startswith("duge-robust/")      # longest chains first
    # the default ablation switches off every term that is on by default, one group at a time, and nothing else
    on = {t for t, w in DEFAULT_WEIGHTS.items() if w}
    assert set(cfg.ablation) == {v for v, terms in ABLATIONS.items() if on & set(terms)}
    assert {t for v in cfg.ablation for t in ABLATIONS[v]} >= on
    assert len(eval_scenes(BenchConfig.quick())) == len(eval_scenes(cfg)) // 4
    for fraction in (4, MAX_SCENE_FRACTION):          # quick's quarter, and the smallest share --scene-fraction allows
        few = eval_scenes(BenchConfig(scene_fraction=fraction))
        for axis_values in (lambda s: s.color, lambda s: s.style, lambda s: s.subject):
            assert len({axis_values(s) for s in few}) == len({axis_values(s) for s in eval_scenes(cfg)})
    assert len({s.subject for s in eval_scenes(BenchConfig(scene_fraction=MAX_SCENE_FRACTION + 1))}) < 11


def test_scene_fraction_is_for_the_toy_only(tmp_path, capsys):
    assert main(["bench", "--base", "some/sd-model", "--judge", "some/clip", "--sequence", "church", "--scene-fraction",
                 "2", "-o", str(tmp_path / "x")]) == 2
    assert "for the toy world's scenes" in capsys.readouterr().err and not (tmp_path / "x").exists()
