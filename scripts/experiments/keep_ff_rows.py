"""keep_ff on a part of its rows only, as run for docs/benchmarks.md "What erodes on seed 1": the library's
keep_ff term (losses._keep_ff, the preserve and replay rows) is replaced in this process by one that reads

  replay  the replay rows only (the prompts far from the concept);
  anchor  the preserve rows whose prompt is one of the request's anchor prompts (the scenes of the anchor concept,
          which the target is erased onto),

then scripts/experiments/wider_targets.py runs with the JSON given (a bench of duge-robust alone, one thread):

    HF_HUB_OFFLINE=1 python scripts/experiments/keep_ff_rows.py anchor OUT \
        '{"targets": ["k","v","out","ff"], "weights": {"keep_attn": 15, "keep_ff": 15}, "bench": {"sequence": "default", "seeds": [1]}}'

One process only (the patch does not reach bench workers). Not a test and not a benchmark command.
"""
import runpy
import sys
from pathlib import Path

import torch

from duge_lora import losses, step

ROWS = sys.argv[1]
_LAST = {"anchor_rows": None}
_sample_batch = step.sample_batch


def sample_batch(data, segments, n, gen):
    """step.sample_batch, remembering which preserve rows of this batch are anchor prompts."""
    x0, e_train, e_ref, seg = _sample_batch(data, segments, n, gen)
    anchors = {pair[2] for pair in data.pairs}              # the anchor prompts' rows of data.emb
    _LAST["anchor_rows"] = (torch.tensor([e in anchors for e in e_train[seg["preserve"]]])
                            if "preserve" in seg else None)
    return x0, e_train, e_ref, seg


def keep_ff_rows(o, w):
    if not o.ff_keep:
        return None
    start = o.pred.segments.get("anchor", slice(0, 0)).stop  # ff_keep holds the rows after the anchor rows
    if ROWS == "replay":
        if not o.pred.has("replay"):
            return o.ff_keep[0].new_zeros(1)
        r = o.pred.segments["replay"]
        idx = torch.arange(r.start - start, r.stop - start)
    else:
        mask = _LAST["anchor_rows"]
        if mask is None or not mask.any():
            return o.ff_keep[0].new_zeros(1)                # every step records the term (train.py averages it)
        p = o.pred.segments["preserve"]
        idx = torch.arange(p.start - start, p.stop - start)[mask]
    return losses.attention_loss([x[idx] for x in o.ff_keep], [x[idx] for x in o.ff_keep_ref])


if ROWS not in ("replay", "anchor"):
    sys.exit("rows: replay or anchor")
step.sample_batch = sample_batch
losses.TERMS["keep_ff"] = losses.Term(keep_ff_rows, 0.0)
sys.argv = ["wider_targets.py", *sys.argv[2:]]
runpy.run_path(str(Path(__file__).with_name("wider_targets.py")), run_name="__main__")
