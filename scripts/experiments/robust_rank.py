"""The robust preset at another LoRA rank (the preset of 2026-12-01 trained rank 4, alpha = rank, on to_k/to_v/to_out/ff
in every block, without the repair: robust_bench.preset_of_2026_12_01 keeps it so), as run
for docs/benchmarks.md "What was tried for the defence": a bench of duge-robust alone through the library (one
process, one thread), every other setting the preset's. Usage (from the repository root):

    HF_HUB_OFFLINE=1 python scripts/experiments/robust_rank.py OUT '{"rank": 8, "bench": {"sequence": "default", "seeds": [1]}}'

Without "bench" it runs quick's chain. Not a test and not a benchmark command: a record of how those rows were made."""
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch
from robust_bench import preset_of_2026_12_01, run

from duge_lora import adversarial
from duge_lora.adapter import LoraSpec

torch.set_num_threads(1)
out, over = Path(sys.argv[1]), json.loads(sys.argv[2])
rank = int(over["rank"])
preset = preset_of_2026_12_01(adversarial.robust_preset)   # the preset these rows were measured with


def at_rank(cfg, targets_given=False, weights_given=None):
    cfg = preset(cfg, targets_given, weights_given)
    return replace(cfg, lora=LoraSpec(rank=rank, targets=cfg.lora.targets))      # alpha = rank: scaling 1, as at 4


adversarial.robust_preset = at_rank             # bench._train_request imports it at call time
run(out, over)
