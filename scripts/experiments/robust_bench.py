"""What the robust-preset experiments share: a bench of duge-robust alone through the library (one process, one
thread), on quick's chain or on {"sequence": S (a name or a list of concepts), "seeds": [...], "steps": N,
"attack_steps": N} from the experiment's JSON, printing each step."""
import json
import time
from pathlib import Path

from duge_lora.bench import prepare_dir, run_bench
from duge_lora.bench_config import SEQUENCES, BenchConfig
from duge_lora.bench_results import collect


def preset_with(preset, ff: str, clean_replay: bool = False, own_share: float = 0.0):
    """adversarial.robust_preset with the library's repair off, the feed-forward target `ff` ("ff" or "ff-low") in
    place of the preset's, and the clean replay and own share as given: what the experiment scripts train with."""
    from dataclasses import replace

    def robust_preset(cfg, *a, **k):
        cfg = preset(cfg, *a, **k)
        targets = tuple(ff if t in ("ff", "ff-low") else t for t in cfg.lora.targets)
        return replace(cfg, repair=False, clean_replay=clean_replay, own_share=own_share,
                       lora=replace(cfg.lora, targets=targets))
    return robust_preset


def preset_of_2026_12_01(preset):
    """adversarial.robust_preset as it was when the experiments of 2026-12-01 ran (erosion_guard.py, robust_rank.py):
    ff in every transformer block, no repair toward theta_0, no clean replay and the anchor rows drawn alike, so that
    their recorded commands keep their meaning after the preset gained ff-low, the repair, the clean replay and the
    own share (2026-12-01 evening to 2026-12-02)."""
    return preset_with(preset, "ff")


def after_make_data(after) -> None:
    """Patch trainset (and train) so that every TrainData made from now on goes through `after(data)`. The rows'
    prompts are the library's own data.prompts (trainset.TrainData)."""
    from duge_lora import trainset
    import duge_lora.train as train_mod

    make = trainset.make_data

    def make_data(*a, **k):
        return after(make(*a, **k))

    trainset.make_data = train_mod.make_data = make_data


def run(out: Path, over: dict) -> None:
    b = over.get("bench", {})
    kw = {"methods": ("duge-robust",), "ablation": ()}
    if "sequence" in b:                         # a sequence's name, or a list of concepts
        kw["sequence"] = SEQUENCES[b["sequence"]] if isinstance(b["sequence"], str) else tuple(b["sequence"])
    if "attack_steps" in b:
        kw["attack_steps"] = int(b["attack_steps"])
    if "seeds" in b:
        kw["seeds"] = tuple(b["seeds"])
    if "steps" in b:
        kw["steps"] = int(b["steps"])
    cfg = BenchConfig(**kw) if b else BenchConfig.quick(**kw)
    t0 = time.time()
    prepare_dir(out, cfg, False)
    run_bench(cfg, out, workers=1)
    print(json.dumps(over), f"{time.time() - t0:.0f}s")
    for st in collect(cfg, out)["methods"]["duge-robust"]["steps"]:
        print(st.get("step"), {k: st.get(k) for k in ("mean_ua", "ira", "cra", "erosion", "recovered")})
