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
from pathlib import Path

import torch
from robust_bench import run

from duge_lora import adapter, adversarial

torch.set_num_threads(1)
out, over = Path(sys.argv[1]), json.loads(sys.argv[2])
adapter._TARGET_MODULE["so"] = "attn1.to_out.0"
adapter.TARGET_CHOICES = (*adapter.TARGET_CHOICES, "so")
adversarial.TARGETS = tuple(over["targets"])
adversarial.WEIGHTS = {**adversarial.WEIGHTS, "keep_attn": 1.0, **over.get("weights", {})}
adversarial.ROUNDS = over.get("rounds", adversarial.ROUNDS)      # 0: the preset without its adversarial rounds
run(out, over)
