"""Where a concept's cross-attention output lives against every other prompt's, on the toy base: the room a to_out
edit has to change the concept without moving anything else (docs/method.md, "Why robustness costs retention here").

For each world scene (its canonical prompt, one image of theta_0 per prompt, noised at 5 levels) the input of every
attn2.to_out.0 is collected. Per layer and concept: how many directions carry under 1% (and 0.1%) of the largest
eigenvalue of the other scenes' second moment, and what share of the concept's own energy falls there; and the best
ratio of the concept's energy to the others' along one direction (a generalised eigenvalue).

    HF_HUB_OFFLINE=1 python scripts/experiments/attn_subspace.py circle red striped mickey
    MODULE=ff.net.2 HF_HUB_OFFLINE=1 python scripts/experiments/attn_subspace.py circle red striped mickey   # the feed-forward output's input

Not a test and not a benchmark command: a measurement behind a paragraph of the docs."""
import os
import sys

import numpy as np
import torch

from duge_lora.generate import generate
from duge_lora.models import load_base
from duge_lora.toy import world
from duge_lora.trainset import encode_prompts

torch.set_num_threads(2)
base = load_base("toy", device="cpu")
unet = base.pipe.unet
scenes = world.all_scenes()
prompts = [s.prompt() for s in scenes]
latents = generate(base, prompts, 1, seed=0, output_type="latent")[:, 0]
states = encode_prompts(base, prompts)
caps: dict[str, list[torch.Tensor]] = {}
hooks = [m.register_forward_pre_hook(lambda mod, inp, n=n: caps.setdefault(n, []).append(inp[0].detach()))
         for n, m in unet.named_modules() if n.endswith(os.environ.get("MODULE", "attn2.to_out.0"))]
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for t in (100, 300, 500, 700, 900):
        xt = base.pipe.scheduler.add_noise(latents, torch.randn(latents.shape, generator=g), torch.full((len(latents),), t))
        unet(xt, t, encoder_hidden_states=states)
for h in hooks:
    h.remove()

print("| concept | layer | width | dims < 1% (target energy there) | dims < 0.1% (target energy there) | best ratio |")
print("|---|---|---:|---:|---:|---:|")
for concept in sys.argv[1:] or ["circle"]:
    slot = world.SLOT[world.axis_of(concept)]
    is_t = np.array([getattr(s, slot) == concept for s in scenes])
    for name, chunks in caps.items():
        o = torch.stack([torch.cat([c[i] for c in chunks]) for i in range(len(scenes))]).double()
        on, ot = o[~is_t].flatten(0, 1), o[is_t].flatten(0, 1)
        cn, ct = on.T @ on / len(on), ot.T @ ot / len(ot)
        lam, u = torch.linalg.eigh(cn)
        cells = []
        for tau in (1e-2, 1e-3):
            p = u[:, lam < tau * lam.max()]
            cells.append(f"{p.shape[1]} ({100 * float(torch.trace(p.T @ ct @ p) / torch.trace(ct)):.1f}%)")
        chol = torch.linalg.cholesky(cn + 1e-6 * lam.max() * torch.eye(len(cn), dtype=cn.dtype))
        m = torch.linalg.solve_triangular(chol, torch.linalg.solve_triangular(chol, ct, upper=False).T, upper=False)
        layer = name.split(".transformer_blocks")[0]
        print(f"| {concept} | {layer} | {o.shape[-1]} | {cells[0]} | {cells[1]} | {float(torch.linalg.eigvalsh(m)[-1]):.0f} |")
