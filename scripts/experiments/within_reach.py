"""Recovery counted with the plain word too, as computed for docs/benchmarks.md "The share of the request's own
pairs": for each target, the larger of the attack's recovery (the bench's `recovered_targets`) and the share of
the target's own prompts that still draw it (1 - UA). A target the method never erased is then within reach at
its plain-prompt rate, where the bench's `recovered` counts only what the learned word draws. Mean over targets,
after the last request, for every seed of every method in the given results.json files (bench outputs) or
step-NN.json files (one chain's step).

    python scripts/experiments/within_reach.py docs/bench-attack/default/results.json /work/exp/RUN/runs/duge-robust/seed-0/step-10.json

Not a test and not a benchmark command."""
import json
import sys


def within_reach(step: dict) -> tuple[float, float]:
    """(the bench's recovered, recovered or still drawn), in percent, mean over the step's targets."""
    rec = step["recovered_targets"]
    ua = {t["concept"]: t["ua"] for t in step["targets"]}
    reach = sum(max(rec[c], 1 - ua[c]) for c in rec) / len(rec)
    return round(100 * step["recovered"], 1), round(100 * reach, 1)


for path in sys.argv[1:]:
    d = json.load(open(path))
    if "methods" not in d:                                  # one chain's step-NN.json
        print(path, *within_reach(d))
        continue
    for method, m in d["methods"].items():
        chains = m.get("per_seed") or [m["steps"]]
        for seed, steps in zip(m.get("seeds", [0]), chains):
            if steps and steps[-1].get("recovered_targets"):
                print(path, method, f"seed {seed}", *within_reach(steps[-1]))
