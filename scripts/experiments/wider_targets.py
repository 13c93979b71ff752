"""The robust preset with the adapter reaching beyond cross-attention, as run for docs/benchmarks.md "The robust
preset reaches the feed-forward output" before `ff` became a target of the library (adapter.py) and of the preset
(adversarial.py). Adds `so` (self-attention's output, attn1.to_out.0) as a target (adapter.targets_of reads any
suffix of adapter._TARGET_MODULE); a bench of duge-robust alone through the library (one process, one thread).
Before `ff` was in the library this script added it the same way.

    HF_HUB_OFFLINE=1 python scripts/experiments/wider_targets.py OUT '{"targets": ["k","v","out","so"]}'
    HF_HUB_OFFLINE=1 python scripts/experiments/wider_targets.py OUT '{"targets": ["k","v","out","ff"], "weights": {"keep_attn": 15}, "bench": {"sequence": "dependent", "seeds": [0]}}'

With "rounds": R the preset runs R adversarial rounds per request (0: none). Without "bench" it runs quick's
chain. Not a test and not a benchmark command: a record of how those rows were made."""
import json
import sys
import time
from pathlib import Path

import torch

from duge_lora import adapter, adversarial
from duge_lora.bench import prepare_dir, run_bench
from duge_lora.bench_config import SEQUENCES, BenchConfig
from duge_lora.bench_results import collect

torch.set_num_threads(1)
out, over = Path(sys.argv[1]), json.loads(sys.argv[2])
adapter._TARGET_MODULE["so"] = "attn1.to_out.0"
adapter.TARGET_CHOICES = (*adapter.TARGET_CHOICES, "so")
adversarial.TARGETS = tuple(over["targets"])
adversarial.WEIGHTS = {**adversarial.WEIGHTS, "keep_attn": 1.0, **over.get("weights", {})}
adversarial.ROUNDS = over.get("rounds", adversarial.ROUNDS)      # 0: the preset without its adversarial rounds
b = over.get("bench", {})
kw = {"methods": ("duge-robust",), "ablation": ()}
if "sequence" in b:
    kw["sequence"] = SEQUENCES[b["sequence"]]
if "seeds" in b:
    kw["seeds"] = tuple(b["seeds"])
cfg = BenchConfig(**kw) if b else BenchConfig.quick(**kw)
t0 = time.time()
prepare_dir(out, cfg, False)
run_bench(cfg, out, workers=1)
print(json.dumps(over), f"{time.time() - t0:.0f}s")
for st in collect(cfg, out)["methods"]["duge-robust"]["steps"]:
    print(st.get("step"), {k: st.get(k) for k in ("mean_ua", "ira", "cra", "erosion", "recovered")})
