"""One DUGE chain on a sequence, judged after every request, with TrainConfig overrides: the experiments behind
docs/benchmarks.md, "Chains that depend on each other".

Usage: HF_HUB_OFFLINE=1 .venv/bin/python scripts/run_chain.py default|dependent|c1,c2,... OUT [init=uce|zero] [w.NAME=VALUE ...]
(OUT/base is measured first unless a bench's base/ folder of the same sequence is copied there.)
"""
import functools
import sys
from pathlib import Path
import duge_lora.train as train
from duge_lora.bench import run_chain, measure_base
from duge_lora.bench_config import BenchConfig, Run, SEQUENCES

seq, out = sys.argv[1], Path(sys.argv[2])
overrides, weights = {}, {}
for kv in sys.argv[3:]:
    k, v = kv.split("=", 1)
    if k.startswith("w."):
        weights[k[2:]] = float(v)
        continue
    try: overrides[k] = float(v)
    except ValueError: overrides[k] = v
if weights:
    from duge_lora.losses import DEFAULT_WEIGHTS
    overrides["weights"] = dict(DEFAULT_WEIGHTS) | weights
train.TrainConfig = functools.partial(train.TrainConfig, **overrides)
cfg = BenchConfig(methods=("duge",), sequence=SEQUENCES.get(seq) or tuple(seq.split(",")), seeds=(0,), ablation=())
out.mkdir(parents=True, exist_ok=True)
measure_base(cfg, out, 0)
rows = run_chain(Run("duge", "duge", 0), cfg, out)
for r in rows:
    print(r["step"], r["target"], "mean_ua %.3f" % r["mean_ua"], "erosion %.3f" % r["erosion"], "ira %.3f" % r["ira"],
          " ".join(f"{t['concept']}:{t['ua']:.2f}" for t in r["targets"]), flush=True)
