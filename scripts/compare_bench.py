"""Compare two bench folders: every judged value of every method and step, and every adapter's tensors.

Usage: .venv/bin/python scripts/compare_bench.py BEFORE_DIR AFTER_DIR  (two runs of the same `duge-lora bench`
command, e.g. before and after a refactoring that must not change behaviour; docs/benchmarks.md, issue 10).
"""
import json, sys, pathlib
from safetensors.torch import load_file
a, b = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ra, rb = json.loads((a/"results.json").read_text()), json.loads((b/"results.json").read_text())
JUDGED = ("ua", "ua_prev", "mean_ua", "ira", "cra", "erosion", "fd", "accuracy", "targets", "non_target_images")
diffs = 0; n = 0
for group in ("methods", "ablation"):
    for name in ra[group]:
        for sa, sb in zip(ra[group][name]["steps"], rb[group][name]["steps"]):
            for k in JUDGED:
                if k in sa or k in sb:
                    n += 1
                    if sa.get(k) != sb.get(k):
                        diffs += 1; print("DIFF", group, name, sa["step"], k, sa.get(k), sb.get(k))
print(f"judged values compared: {n}, different: {diffs}")
print("base equal:", ra["base"] == rb["base"])
worst = {}
for f in sorted((a/"runs").glob("*/seed-0/*/pytorch_lora_weights.safetensors")):
    g = b / f.relative_to(a)
    ta, tb = load_file(str(f)), load_file(str(g))
    assert ta.keys() == tb.keys()
    d = max(float((ta[k]-tb[k]).abs().max()) for k in ta)
    m = max(float(ta[k].abs().max()) for k in ta)
    worst[str(f.relative_to(a/"runs").parent)] = (d, m)
for k, (d, m) in worst.items():
    print(f"{k:28s} max|before-after| {d:.3g}  (max|w| {m:.3g})  {'identical' if d == 0 else ''}")
