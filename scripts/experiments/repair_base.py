"""The robust preset with a repair reference, as run for docs/benchmarks.md "A repair term toward the base": the
preservation terms that compare with a frozen model (L_pp, replay, keep_attn; losses.py) read the base theta_0
instead of theta_{k-1} on every preserve and replay row whose prompt names no erased concept (the earlier targets,
this request's, and their synonyms). A concept that requests 1..k-1 wore away is then pulled back toward what the
base drew, instead of being held where theta_{k-1} left it; rows that name an erased concept keep theta_{k-1}'s
reference (they must stay erased). A bench of duge-robust alone through the library (one process, one thread).
Usage (from the repository root):

    HF_HUB_OFFLINE=1 PYTHONPATH=scripts/experiments python scripts/experiments/repair_base.py OUT '{"bench": {"sequence": "default", "seeds": [1]}}'

Optional keys: "rows" ("both", the default: preserve and replay rows; "replay": replay rows only), "attn" (1, the
default: keep_attn's reference from theta_0 too; 0: only the noise predictions, which is what the library's
`train --repair` (duge_lora/repair.py) does: on the quick chain the two gave bit-identical adapters), "memory" (N, default 0 = off: the
adversarial pairs of each request's last round (adversarial.Adversary: the attacker's word in the target prompts,
paired with an anchor image and the anchor prompt) are kept in the process, N of them per request drawn with a
fixed seed, and every later request erases them again beside its own pairs, with theta_{k-1}'s reference as for
any pair), "rounds" (N: adversarial rounds per request instead of the preset's adversarial.ROUNDS), "replay"
("clean": every replay prompt that names no erased concept is kept in the data, and a sample of the earlier targets'
scenes fills the rest of max_prompts; by default the replay set is sampled as a whole, and at request 10 of the default
sequence that keeps about 3 of its 10 clean prompts among 221), "own" (a share, e.g. 0.5: that share of each batch's
anchor rows is drawn from the request's own target pairs, the rest from the pairs the adversarial rounds (and the
memory) added; by default all pairs are drawn alike, and after four rounds a request's own pairs are a fifth of
them), "anchor" ("far": each request's default anchor is the nearest concept of its axis, in the world's
candidate order (worlds/toy.anchor_candidates), that is neither erased nor one of the target's neighbours (its
preserve set); where none is left, the usual default. Yellow then draws purple instead of orange on the default
sequence, and red and blue draw yellow). "ff" ("low": the feed-forward output adapted only in
the four transformer blocks at the lower resolution, 128 channels: down_blocks.1, mid_block, up_blocks.0 (two), the
library's preset since 2026-12-02 (target ff-low); "high": only in the three at the latent's full resolution, 64
channels: down_blocks.0, up_blocks.1 (two); "all", the default: all seven, as in the preset before 2026-12-02, so
that the commands recorded for the earlier chains (robust_frontier.VARIANTS) keep their meaning).
Since 2026-12-02 the library's preset repairs the noise predictions itself (TrainConfig.repair); this script turns
that off and repairs with its own separately loaded base, so that its options keep their meaning. Its "replay":
"clean" and "own" options are the library's TrainConfig.clean_replay and own_share (in the preset since 2026-12-02
late morning, with own_share 0.9); without them this script turns both off, so that its earlier commands keep their
meaning.
"resume_any" (1: a resumed bench reuses its finished adapters even where they were trained with other settings,
bench.check_finished turned off; for retraining only the last request of a finished chain with another option).
The share of rows repaired is written to OUT/repair.jsonl per request. Not a test and not a benchmark
command."""
import json
import sys
from pathlib import Path

import torch
from robust_bench import after_make_data, preset_with, run

from duge_lora import adversarial, bench, step
from duge_lora.hooks import AttentionCapture
from duge_lora.repair import erased_words

torch.set_num_threads(1)
out, over = Path(sys.argv[1]), json.loads(sys.argv[2])
ROWS = ("preserve", "replay") if over.get("rows", "both") == "both" else ("replay",)
ATTN = bool(over.get("attn", 1))
MEMORY = int(over.get("memory", 0))
adversarial.ROUNDS = int(over.get("rounds", adversarial.ROUNDS))   # robust_preset reads it when a request is trained
CLEAN_FIRST = over.get("replay") == "clean"
OWN = float(over.get("own", 0))
FAR = over.get("anchor") == "far"
FF = {"low": "ff-low", "high": "ff-low", "all": "ff"}[over.get("ff", "all")]   # "high": ff-low's blocks swapped
HIGH = over.get("ff") == "high"
ADV = {"last": None, "kept": []}               # the current request's last round; the earlier requests' kept pairs
STATE = {"words": None, "unet0": None, "capture0": None, "rows": 0, "clean": 0}


def with_memory(data):
    """make_data's data, with the earlier requests' kept adversarial pairs appended (the "memory" option)."""
    if ADV["kept"]:                             # the earlier requests' adversarial pairs, erased again
        x = torch.cat([m["x"] for m in ADV["kept"]])
        e = torch.cat([m["e"] for m in ADV["kept"]]).to(data.emb)
        ref = torch.cat([m["ref"] for m in ADV["kept"]]).to(data.emb)
        n_x, n_e, n = len(data.anchor_x), len(data.emb), len(x)
        data.anchor_x = torch.cat([data.anchor_x, x.to(data.anchor_x)])
        data.emb = torch.cat([data.emb, e, ref])
        data.pairs = data.pairs + [(n_x + i, n_e + i, n_e + n + i) for i in range(n)]
    return data


_add = adversarial.Adversary._add


def adv_add(self, data, states, pairs):
    """Adversary._add, remembering this round's pairs as tensors (anchor latent, learned-word states, anchor states)."""
    if MEMORY and pairs:
        lat = [a for a, _ in pairs]
        ref = [r for _, r in pairs]
        ADV["last"] = {"x": data.anchor_x[lat].clone(), "e": states.detach().clone(), "ref": data.emb[ref].clone()}
    return _add(self, data, states, pairs)


def base_unet():
    """theta_0: the toy base's UNet, frozen, with its own cross-attention capture."""
    if STATE["unet0"] is None:
        from duge_lora.models import load_base

        unet0 = load_base("toy", "cpu").pipe.unet.eval().requires_grad_(False)
        STATE["unet0"], STATE["capture0"] = unet0, AttentionCapture(unet0)
    return STATE["unet0"], STATE["capture0"]


def clean_rows(s, e_ref, seg) -> list[int]:
    """Batch rows of the repaired segments whose prompt names no erased word."""
    names = s.data.prompts
    if names is None:
        return []
    rows = [r for name in ROWS if name in seg for r in range(seg[name].start, seg[name].stop)]
    STATE["rows"] += len(rows)
    keep = [r for r in rows if e_ref[r] < len(names) and not STATE["words"].search(names[e_ref[r]])]
    STATE["clean"] += len(keep)
    return keep


_passes = step._passes


def passes(s, xt, t, e_train, e_ref, seg):
    """step._passes, then the clean rows' frozen references replaced by theta_0's on the same x_t, t and prompt."""
    eps, eps_ref, attn_pair, kept, extra = _passes(s, xt, t, e_train, e_ref, seg)
    rows = clean_rows(s, e_ref, seg)
    if not rows:
        return eps, eps_ref, attn_pair, kept, extra
    unet0, cap = base_unet()
    idx = torch.tensor(rows)
    with torch.no_grad():
        cap.enabled = True
        emb = s.data.emb[[e_ref[r] for r in rows]].to(xt.device, unet0.dtype)
        eps0 = unet0(xt[idx].to(unet0.dtype), t[idx], encoder_hidden_states=emb).sample.float()
        attn0 = [o.float() for o in cap.take(slice(None))]
        cap.enabled = False
    eps_ref = eps_ref.clone()
    eps_ref[idx] = eps0
    keep_out, keep_ref = kept["attn"]
    if ATTN and keep_ref:
        start = seg["anchor"].stop if "anchor" in seg else 0
        keep_ref = [r.clone() for r in keep_ref]
        for ref, new in zip(keep_ref, attn0):
            ref[idx - start] = new
        kept = {**kept, "attn": (keep_out, keep_ref)}
    return eps, eps_ref, attn_pair, kept, extra


_train = bench._train_request


def train_request(run_, cfg, out_, req, adapters, adapter, say):
    """bench._train_request with the erased words of requests 1..k set for clean_rows."""
    from duge_lora.bench_config import chain_requests

    STATE["words"] = erased_words([req, *chain_requests(cfg.sequence)[:len(adapters)]])  # drawn_as is among these
    STATE["rows"] = STATE["clean"] = 0
    ADV["last"] = None
    done = (adapter / "duge.json").exists()
    held = sum(len(m["x"]) for m in ADV["kept"])
    result = _train(run_, cfg, out_, req, adapters, adapter, say)
    if ADV["last"] is not None:
        last = ADV["last"]
        pick = torch.randperm(len(last["x"]), generator=torch.Generator().manual_seed(len(adapters)))[:MEMORY]
        ADV["kept"].append({k: v[pick] for k, v in last.items()})
    if not done:
        note = {"request": req.concept, "words": STATE["words"].pattern, "rows": STATE["rows"], "clean": STATE["clean"],
                "memory_pairs": held}
        with open(out_ / "repair.jsonl", "a") as f:
            f.write(json.dumps(note) + "\n")
        print(json.dumps(note), flush=True)
    return result


def far_anchor(resolve):
    """worlds.toy.resolve_anchor, with the default anchor moved off the target's neighbours (the "anchor": "far" option)."""
    from duge_lora.toy import world
    from duge_lora.worlds.toy import anchor_candidates

    def resolve_anchor(word, anchor, erased, force=False):
        if anchor is not None:                  # a named anchor is the user's, checked as usual
            return resolve(word, anchor, erased, force)
        far = [c for c in anchor_candidates(word) if c not in erased and c not in world.NEIGHBOURS[word]]
        if not far:
            return resolve(word, anchor, erased, force)
        return far[0], (f"far anchor: drawing {far[0]!r} instead of a neighbour",)
    return resolve_anchor


after_make_data(with_memory)
# the library's own repair off (passes() repairs instead, with a separately loaded base), ff as the "ff" option says,
# "replay" and "own" as the library's TrainConfig.clean_replay and own_share (the script's own copies of them, which
# they replaced, gave a bit-identical request 3 of the default sequence, seed 1)
adversarial.robust_preset = preset_with(adversarial.robust_preset, FF, CLEAN_FIRST, OWN)
if HIGH:
    from duge_lora import adapter
    _full = adapter.full_resolution
    adapter.full_resolution = lambda name, up: not _full(name, up)   # ff-low's blocks become the full-res ones
if FAR:
    import duge_lora.worlds.toy as toy_world
    toy_world.resolve_anchor = far_anchor(toy_world.resolve_anchor)
step._passes = passes
adversarial.Adversary._add = adv_add
bench._train_request = train_request
if over.get("resume_any"):
    bench.check_finished = lambda cfg, out_: None
run(out, over)
