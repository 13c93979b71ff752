"""Robust-preset variants, as run for docs/benchmarks.md "What was tried for the defence": a bench of duge-robust
alone through the library (one process, one thread), with keep_attn read from some rows only, other weights, or the
adversarial module's constants overridden. Usage (from the repository root):

    HF_HUB_OFFLINE=1 python scripts/experiments/robust_variants.py OUT '{"quick": true, "ka_rows": "replay", "weights": {"keep_attn": 5}}'
    git apply -p0 scripts/experiments/short-rounds.patch   # then "rounds": 20, "attack_steps": 10, "warm": true, "replace": true

Not a test and not a benchmark command: a record of how those rows were made."""
import json, sys, time
from pathlib import Path
from dataclasses import replace
import torch
from duge_lora import adversarial, losses
from duge_lora.bench_config import BenchConfig
from duge_lora.bench import prepare_dir, run_bench

torch.set_num_threads(1)
out = Path(sys.argv[1]); over = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
adversarial.WEIGHTS = {**adversarial.WEIGHTS, **over.get("weights", {})}
for k in ("ROUNDS", "ATTACK_STEPS", "WARM", "REPLACE"):
    if k.lower() in over: setattr(adversarial, k, over[k.lower()])
mode = over.get("ka_rows", "all")

def ka(o, w):
    if not o.attn_keep:
        return None
    segs, a = o.pred.segments, o.pred.segments["anchor"].stop
    names = {"replay": ["replay"], "preserve": ["preserve"], "all": ["preserve", "replay"]}[mode]
    rows = [r for n in names if n in segs for r in range(segs[n].start - a, segs[n].stop - a)]
    if not rows:
        return None
    return losses.attention_loss([x[rows] for x in o.attn_keep], [x[rows] for x in o.attn_keep_ref])

losses.TERMS["keep_attn"] = replace(losses.TERMS["keep_attn"], fn=ka)
kw = {"methods": ("duge-robust",), "ablation": (), **{k: tuple(v) if isinstance(v, list) else v for k, v in over.get("bench", {}).items()}}
cfg = BenchConfig.quick(**kw) if over.get("quick") else BenchConfig(**kw)
t = time.time()
prepare_dir(out, cfg, False)
run_bench(cfg, out, workers=1)
from duge_lora.bench_results import collect
r = collect(cfg, out)
print(json.dumps(over), f"{time.time()-t:.0f}s")
for st in r["methods"]["duge-robust"]["steps"]:
    print(st.get("step"), {k: st.get(k) for k in ("mean_ua", "ira", "cra", "erosion", "recovered")})
