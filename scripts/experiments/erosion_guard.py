"""The robust preset with an erosion guard, as run for docs/benchmarks.md "Where the adversarial pairs go, and an
erosion guard": after each request
is trained with the preset, the toy judge compares theta_{k-1} and theta_k on a few scenes of every concept the
request could wear away (the request's axis and its preserve set, less the erased ones): SCENES scenes x 2
images each, the same seeds for both models. A concept that theta_k draws right on DROP or more fewer images
than theta_{k-1} is eroded; the request is then trained again with keep_ff (losses._keep_ff) at KEEP_FF on the
preserve and replay rows of the eroded concepts only (the first adapter is kept beside it as NN-concept.preset).
A bench of duge-robust alone through the library (one process, one thread), on the preset as it was then (ff in
every block, no repair: robust_bench.preset_of_2026_12_01). Usage (from the repository root):

    HF_HUB_OFFLINE=1 PYTHONPATH=scripts/experiments python scripts/experiments/erosion_guard.py OUT '{"bench": {"sequence": "default", "seeds": [1]}}'

Optional keys: "keep_ff" (default 15), "drop" (default 3 images of 16), "scenes" (default 8), "scope" ("near", the
default: the request's axis and preserve set; "all": every concept of the world not erased, theta_{k-1}'s hits
taken from the last request's check), "shown" ("any", the default: any scene of the concept; "kept": only the
scenes that show no erased concept, those the bench's erosion is measured on; theta_{k-1} is then judged again;
"bench": every scene the bench's erosion is measured on after this request, 2 images each with the guard's seeds,
each concept scored by the judge's right answers on its own axis over the scenes that show it), "pick"
(attack steps, default 0 = off: when the guard fires, the request's concept is attacked (attack.run_attack, seed
100 + the run's seed, not the bench's) on theta_k from both trainings, and the second is kept only if the attacker
gets back no more than "margin" (default 0.15) above the first; else the first is put back). The guard's
decisions are written to OUT/guard.jsonl. Not a test and not a benchmark command."""
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from robust_bench import preset_of_2026_12_01, run

from duge_lora import adversarial, bench, losses, step
from duge_lora.toy import world

torch.set_num_threads(1)
out, over = Path(sys.argv[1]), json.loads(sys.argv[2])
KEEP_FF, DROP, SCENES = float(over.get("keep_ff", 15)), int(over.get("drop", 3)), int(over.get("scenes", 8))
SCOPE = over.get("scope", "near")              # "near": the request's axis and preserve set; "all": every concept
PICK, MARGIN = int(over.get("pick", 0)), float(over.get("margin", 0.15))
SHOWN = over.get("shown", "any")               # "kept": only scenes that show no erased concept (the bench's erosion set)
LAST = {"hits": None}                          # with "all": theta_k's hits, theta_{k+1}'s "before"
GUARD = {"words": None}                        # the eroded concepts while a request is trained again
ROWS = {"mask": None, "held": 0}              # held: kept rows under the guard's keep_ff, summed over batches

_sample = step.sample_batch


def sample_batch(data, segments, n, gen):
    """step.sample_batch, remembering which kept rows (preserve, then replay) show an eroded concept."""
    x0, e_train, e_ref, seg = _sample(data, segments, n, gen)
    names = data.prompts
    if GUARD["words"] and names is not None:
        kept = [e for s in ("preserve", "replay") if s in seg for e in e_train[seg[s]]]
        ROWS["mask"] = torch.tensor([e < len(names) and bool(GUARD["words"] & set(names[e].split())) for e in kept])
        ROWS["held"] += int(ROWS["mask"].sum())
    return x0, e_train, e_ref, seg


def keep_ff_rows(o, w):
    mask = ROWS["mask"]
    if not o.ff_keep or mask is None or not mask.any():
        return o.ff_keep[0].new_zeros(1) if o.ff_keep else None
    return losses.attention_loss([x[mask] for x in o.ff_keep], [x[mask] for x in o.ff_keep_ref])


_preset = preset_of_2026_12_01(adversarial.robust_preset)   # the preset the guard was measured on


def preset(cfg, targets_given=False, weights_given=None):
    cfg = _preset(cfg, targets_given, weights_given)
    return cfg if not GUARD["words"] else replace(cfg, weights={**cfg.weights, "keep_ff": KEEP_FF})


def stack_model(adapters):
    """The toy base with base + adapters composed (compose's library API), as the guard's checks judge it."""
    from duge_lora.compose import apply_to_base
    from duge_lora.models import load_base

    model = load_base("toy", "cpu")
    if adapters:
        apply_to_base(model, [str(a) for a in adapters])
    return model


def bench_hits(adapters, scenes, seed):
    """"shown": "bench": per concept, the judge's right answers on its axis over 2 images of each given scene."""
    from duge_lora.evaluate import default_judge
    from duge_lora.generate import generate
    from duge_lora.metrics import axis_mask
    from duge_lora.toy.judge import correct

    images = generate(stack_model(adapters), [s.prompt() for s in scenes], 2, 7000 + seed)
    twice = [s for s in scenes for _ in range(2)]
    ok = correct(default_judge(), images.reshape(-1, *images.shape[2:]), twice)
    res: dict[str, int] = {}
    for axis in world.AXES:
        for s, right in zip((s for s, m in zip(twice, axis_mask(twice, axis)) if m), ok[axis][axis_mask(twice, axis)]):
            c = getattr(s, world.SLOT[axis])
            res[c] = res.get(c, 0) + int(right)
    return res


def hits(adapters, concepts, seed, gone=frozenset()):
    """Per concept, the judge's right answers on its axis over SCENES scenes x 2 images of the model."""
    from duge_lora.evaluate import default_judge
    from duge_lora.generate import generate
    from duge_lora.toy.judge import correct

    model = stack_model(adapters)
    res, judge = {}, default_judge()
    for c in concepts:
        axis = world.axis_of(c)
        scenes = [s for s in world.all_scenes() if getattr(s, world.SLOT[axis]) == c]
        if SHOWN == "kept":               # the scenes the bench's erosion counts: none of them shows an erased concept
            scenes = [s for s in scenes if not gone & {s.subject, s.color, s.style}] or scenes
        scenes = scenes[::max(1, len(scenes) // SCENES)][:SCENES]
        images = generate(model, [s.prompt() for s in scenes], 2, 7000 + seed)
        ok = correct(judge, images.reshape(-1, *images.shape[2:]), [s for s in scenes for _ in range(2)])
        res[c] = int(ok[axis].sum())
    return res


_train = bench._train_request


def recovered(adapters, concept, seed):
    """The attacker's share on base + adapters for one concept (the library's attack, no ceiling)."""
    from duge_lora.attack import AttackConfig, run_attack

    return run_attack("toy", [str(a) for a in adapters], concept, AttackConfig(steps=PICK, seed=100 + seed),
                      with_ceiling=False).recovered


def pick(note, run_, req, adapters, adapter, record, live, after, first_after):
    """Keep the second training unless the attacker gets the concept back more than MARGIN above the first's."""
    from duge_lora.records import resolve_adapter

    first = adapter.with_name(adapter.name + ".preset")
    r1, r2 = recovered([*adapters, first], req.concept, run_.seed), recovered([*adapters, adapter], req.concept, run_.seed)
    note["recovered"] = {"preset": r1, "guarded": r2}
    if r2 <= r1 + MARGIN:
        note["kept"] = "guarded"
        return record, live, after
    note["kept"] = "preset"
    adapter.rename(adapter.with_name(adapter.name + ".guarded"))
    first.rename(adapter)
    return resolve_adapter(adapter).record, None, first_after


def train_again(note, run_, cfg, out_, req, adapters, adapter, say):
    """Keep the first training as NN-concept.preset and train the request again with keep_ff on the rows that name
    an eroded concept (note["eroded"]); note["held_rows"]: how many rows that term read, summed over batches."""
    adapter.rename(adapter.with_name(adapter.name + ".preset"))
    GUARD["words"] = set(note["eroded"])
    try:
        record, live = _train(run_, cfg, out_, req, adapters, adapter, say)
    finally:
        GUARD["words"], ROWS["mask"] = None, None
    note["held_rows"], ROWS["held"] = ROWS["held"], 0
    return record, live


def train_request(run_, cfg, out_, req, adapters, adapter, say):
    if (adapter / "duge.json").exists():
        return _train(run_, cfg, out_, req, adapters, adapter, say)
    record, live = _train(run_, cfg, out_, req, adapters, adapter, say)
    from duge_lora.bench_config import chain_requests
    from duge_lora.worlds import drawn_as

    earlier = chain_requests(cfg.sequence)[:len(adapters)]
    gone = {req.concept} | {e.concept for e in earlier} | {e.concept for e in drawn_as(req, earlier)}
    near = set(world.CONCEPTS[req.axis]) | {world.canonical(p) for p in req.preserve}
    concepts = sorted(({c for names in world.CONCEPTS.values() for c in names} if SCOPE == "all" else near) - gone)
    t0 = time.time()
    if SHOWN == "bench":
        return guard_bench(run_, cfg, out_, req, adapters, adapter, say, record, live, t0)
    last = LAST["hits"] if SCOPE == "all" and LAST["hits"] is not None else None
    before = {c: last[c] for c in concepts} if last and SHOWN != "kept" else hits(adapters, concepts, run_.seed, gone)
    after = hits([*adapters, adapter], concepts, run_.seed, gone)
    eroded = sorted(c for c in concepts if before[c] - after[c] >= DROP)
    note = {"request": req.concept, "before": before, "after": after, "eroded": eroded, "check_s": round(time.time() - t0, 1)}
    first_after = after
    if eroded:
        record, live = train_again(note, run_, cfg, out_, req, adapters, adapter, say)
        again = hits([*adapters, adapter], concepts if SCOPE == "all" else eroded, run_.seed, gone)
        note["again"] = {c: again[c] for c in eroded}
        after = again
        if PICK:
            record, live, after = pick(note, run_, req, adapters, adapter, record, live, after, first_after)
    LAST["hits"] = after
    with open(out_ / "guard.jsonl", "a") as f:
        f.write(json.dumps(note) + "\n")
    print(json.dumps(note), flush=True)
    return record, live


def guard_bench(run_, cfg, out_, req, adapters, adapter, say, record, live, t0):
    """The guard on the bench's own erosion scenes ("shown": "bench")."""
    import numpy as np

    from duge_lora.bench_config import chain_requests, eval_scenes
    from duge_lora.metrics import non_target_mask

    sc = eval_scenes(cfg)
    targets = [(r.axis, r.concept) for r in chain_requests(cfg.sequence)[:len(adapters) + 1]]
    scenes = [s for s, m in zip(sc, non_target_mask(sc, np.zeros(len(sc), bool), targets)) if m]
    before, after = bench_hits(adapters, scenes, run_.seed), bench_hits([*adapters, adapter], scenes, run_.seed)
    eroded = sorted(c for c in before if before[c] - after[c] >= DROP)
    note = {"request": req.concept, "scenes": len(scenes), "before": before, "after": after, "eroded": eroded,
            "check_s": round(time.time() - t0, 1)}
    first_after = after
    if eroded:
        record, live = train_again(note, run_, cfg, out_, req, adapters, adapter, say)
        after = bench_hits([*adapters, adapter], scenes, run_.seed)
        note["again"] = {c: after[c] for c in eroded}
        if PICK:
            record, live, after = pick(note, run_, req, adapters, adapter, record, live, after, first_after)
    with open(out_ / "guard.jsonl", "a") as f:
        f.write(json.dumps(note) + "\n")
    print(json.dumps(note), flush=True)
    return record, live


step.sample_batch = sample_batch
losses.TERMS["keep_ff"] = losses.Term(keep_ff_rows, 0.0)
adversarial.robust_preset = preset
bench._train_request = train_request
run(out, over)
