#!/usr/bin/env bash
# Compose speed on the toy model: 10 rank-4 adapters (random factors, the toy base's fingerprint), timed as
# whole `duge-lora compose` processes (start, imports and model I/O included), without and with --verify.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
T=$(mktemp -d)
.venv/bin/python - "$T" <<'PY'
import sys, pathlib, torch
from duge_lora.adapter import LoraSpec, fingerprint, target_names
from duge_lora.formats import write_adapter_folder
from duge_lora.models import load_base
root, base = pathlib.Path(sys.argv[1]), load_base("toy", device="cpu")
mods = dict(base.pipe.unet.named_modules())
for i in range(10):
    g = torch.Generator().manual_seed(i)
    w = {n: (torch.randn(4, mods[n].in_features, generator=g) * 0.05, torch.randn(mods[n].out_features, 4, generator=g) * 0.05)
         for n in target_names(base.pipe.unet, LoraSpec())}
    write_adapter_folder(root / f"a{i}", w, LoraSpec(), {"request": {"concept": f"c{i}"}, "base": {"fingerprint": fingerprint(base.pipe.unet)}}, "")
PY
A=$(for i in $(seq 0 9); do echo -n "$T/a$i "; done)
for run in 1 2 3; do /usr/bin/time -f "compose 10 toy adapters, --no-verify: %e s wall" .venv/bin/duge-lora compose $A -o $T/m$run.safetensors --no-verify 2>&1 | tail -1; done
/usr/bin/time -f "compose 10 toy adapters, --verify (probe; no judge: random adapters have no toy concept): %e s wall" .venv/bin/duge-lora compose $A -o $T/v.safetensors --json 2>&1 | tail -2
/usr/bin/time -f "duge-lora --help: %e s wall" .venv/bin/duge-lora --help > /dev/null
rm -rf "$T"
