"""The robust preset with its adversarial pairs erased onto another target than the request's anchor, as run for
docs/benchmarks.md "Where the adversarial pairs go, and an erosion guard": a bench of duge-robust alone through the
library (one process, one thread), every other setting the preset's. Usage (from the repository root):

    HF_HUB_OFFLINE=1 python scripts/experiments/adv_target.py OUT '{"target": "empty", "bench": {"sequence": "default", "seeds": [1]}}'

"target": "empty" (the only one): each learned-word prompt is paired with theta_{k-1}'s output under the empty prompt
(on the same anchor image), so the attacker's word is made to guide nowhere rather than toward the anchor.
Not a test and not a benchmark command: a record of how those rows were made. (A resumed run would not restore the
empty prompt's row: run it from the start.)"""
import json
import sys
from pathlib import Path

import torch
from robust_bench import run

from duge_lora import adversarial

torch.set_num_threads(1)
out, over = Path(sys.argv[1]), json.loads(sys.argv[2])
if over.get("target") != "empty":
    sys.exit('"target": "empty" is the only target this script knows')
original = adversarial.Adversary._prompts


def onto_empty(self, data):
    prompts, pairs = original(self, data)
    if not hasattr(self, "empty_row"):                     # the empty prompt's states, once, as one more emb row
        self.empty_row = len(data.emb)
        data.emb = torch.cat([data.emb, data.uncond.to(data.emb)])
    return prompts, [(lat, self.empty_row) for lat, _ in pairs]


adversarial.Adversary._prompts = onto_empty
run(out, over)
