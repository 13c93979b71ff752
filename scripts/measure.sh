#!/usr/bin/env bash
# Measure the figures in docs/benchmarks.md on this machine (a command, not a test; ~15 min on 2 cores).
# Writes JSON results to out/measure/ and prints a summary. Uses a fresh data cache so timings include
# generating the training data.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
export DUGE_LORA_CACHE=$(mktemp -d)
D=.venv/bin/duge-lora
M=out/measure
rm -rf "$M"; mkdir -p "$M"
t() { /usr/bin/time -f "%e s wall, %M KB max RSS" "$@"; }

echo "== sample: 4 prompts x 4 images (process start and model load included)"
t $D sample "a red solid circle" "a blue striped star" "a green outlined kitty" "a purple solid robo" -n 4 -o $M/sample.png 2>&1 | tail -1
echo "== eval on the base (all 198 prompts x 2 images)"
t $D eval --json > $M/eval-base.json
echo "== one request: circle"
t $D train --concept circle -o $M/erase-circle --json > $M/train-circle.json
$D eval --concept circle --json > $M/eval-base-circle.json
$D eval --adapters $M/erase-circle --json > $M/eval-circle.json
echo "== three requests in a row: circle, red, mickey (a stack)"
mkdir -p $M/stack
$D train --concept circle --stack $M/stack --json > $M/train-seq-1.json
$D train --concept red --stack $M/stack --json > $M/train-seq-2.json
$D train --concept mickey --stack $M/stack --json > $M/train-seq-3.json
$D eval --concept circle red mickey --json > $M/eval-base-seq.json
$D eval --adapters $M/stack/circle $M/stack/red $M/stack/mickey --json > $M/eval-seq.json
.venv/bin/python - "$M" <<'PY'
import json, sys, pathlib
m = pathlib.Path(sys.argv[1])
j = lambda n: json.loads((m / n).read_text())
print("base accuracy", j("eval-base.json")["accuracy"], j("eval-base.json")["seconds"], "s")
for name in ("circle", "seq"):
    b, a = j(f"eval-base-{name}.json"), j(f"eval-{name}.json")
    print(name, {k: (b[k], a[k]) for k in ("ua", "ua_prev", "ira", "cra")}, [(t["concept"], t["ua"]) for t in a["targets"]])
for n in ("train-circle.json", "train-seq-1.json", "train-seq-2.json", "train-seq-3.json"):
    r = j(n); print(n, r["seconds"], "s,", r["seconds_per_step"], "s/step,", r["peak_mb"], "MB")
PY
