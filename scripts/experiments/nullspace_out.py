"""The robust preset with its to_out edit held in the null space of the other prompts' attention outputs
(AlphaEdit-style: Fang et al. 2024, "AlphaEdit: Null-Space Constrained Knowledge Editing for Language Models", eq. 9),
as run for docs/benchmarks.md "What was tried for the defence". Before training each request, theta_{k-1}'s inputs
of every attn2.to_out.0 are collected on the request's own non-target rows (anchor, preserve and replay latents
under their prompts, at 5 noise levels); the to_out LoRA's A is projected onto the eigenvectors of their second
moment whose eigenvalue is below tau times the largest, at the start and after every optimiser step. So the to_out
edit cannot move what those prompts feed to_out (beyond the tau share of their energy).

    HF_HUB_OFFLINE=1 python scripts/experiments/nullspace_out.py OUT '{"quick": true, "tau": 1e-2}'
    HF_HUB_OFFLINE=1 python scripts/experiments/nullspace_out.py OUT '{"quick": true, "tau": 1e-2, "weights": {"keep_attn": 0, "pp": 1, "replay": 1, "keep": 1}}'

Not a test and not a benchmark command: a record of how those rows were made (patched into train.prepare)."""
import json
import sys
import time
from pathlib import Path

import torch

from duge_lora import adversarial, train
from duge_lora.bench import prepare_dir, run_bench
from duge_lora.bench_config import BenchConfig
from duge_lora.bench_results import collect
from duge_lora.step import NEW

torch.set_num_threads(1)
out = Path(sys.argv[1])
over = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
adversarial.WEIGHTS = {**adversarial.WEIGHTS, **over.get("weights", {})}
TAU, NOISE_LEVELS = over.get("tau", 1e-2), (100, 300, 500, 700, 900)
LOG = []


@torch.no_grad()
def projections(s) -> dict:
    """{to_out LoRA A weight: projector onto the low-energy directions of the non-target rows' to_out inputs}."""
    unet, d = s.step.unet, s.step.data
    mods = {n: m for n, m in unet.named_modules()
            if n.endswith("attn2.to_out.0") and hasattr(m, "lora_A") and NEW in m.lora_A}
    x = torch.cat([d.anchor_x[[p[0] for p in d.pairs]], d.preserve_x, d.replay_x])
    e = [p[2] for p in d.pairs] + list(d.preserve_e) + list(d.replay_e)
    caps = {n: [] for n in mods}
    hooks = [m.register_forward_pre_hook(lambda mod, inp, n=n: caps[n].append(inp[0].flatten(0, -2).double()))
             for n, m in mods.items()]
    g, was = torch.Generator().manual_seed(1234), unet.training
    unet.eval()
    try:
        for t in NOISE_LEVELS:
            for i in range(0, len(x), 64):
                xb = x[i:i + 64]
                xt = s.step.scheduler.add_noise(xb, torch.randn(xb.shape, generator=g), torch.full((len(xb),), t))
                unet(xt.to(unet.dtype), t, encoder_hidden_states=d.emb[e[i:i + 64]].to(unet.dtype))
    finally:
        for h in hooks:
            h.remove()
        unet.train(was)
    proj = {}
    for n, m in mods.items():
        o = torch.cat(caps[n])
        lam, u = torch.linalg.eigh(o.T @ o / len(o))
        null = u[:, lam < TAU * lam.max()]
        proj[m.lora_A[NEW].weight] = (null @ null.T).float()
        LOG.append((n.split(".transformer_blocks")[0], null.shape[1], o.shape[1]))
    return proj


def project(proj: dict) -> None:
    with torch.no_grad():
        for w, p in proj.items():
            w.copy_(w @ p.to(w))


_prepare = train.prepare


def prepare(*args, **kwargs):
    s = _prepare(*args, **kwargs)
    proj = projections(s)
    project(proj)
    opt_step = s.opt.step

    def step(*a, **k):
        r = opt_step(*a, **k)
        project(proj)
        return r
    s.opt.step = step
    return s


train.prepare = prepare
kw = {"methods": ("duge-robust",), "ablation": ()}
cfg = BenchConfig.quick(**kw) if over.get("quick") else BenchConfig(**kw)
t0 = time.time()
prepare_dir(out, cfg, False)
run_bench(cfg, out, workers=1)
print(json.dumps(over), f"{time.time() - t0:.0f}s", "null-space dims of the first request:", LOG[:7])
for st in collect(cfg, out)["methods"]["duge-robust"]["steps"]:
    print(st.get("step"), {k: st.get(k) for k in ("mean_ua", "ira", "cra", "erosion", "recovered")})
