#!/usr/bin/env bash
# The full continual benchmark: both default sequences (default, dependent), every method, DUGE, duge-robust and the
# closed-form UCE with 3 seeds (mean and spread), the others and the ablation with one; after each chain's last
# request the concept-recovery attack on every target, and on the base once per seed (the ceiling). Each sequence
# writes its own folder and resumes where it stopped, so the bench can be run in parts: stop it (Ctrl-C) and run
# this script again.
#   bash scripts/bench_full.sh [OUT]        (default OUT: out/bench; results in OUT/default and OUT/dependent)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
OUT=${1:-out/bench}
mkdir -p "$OUT"
.venv/bin/duge-lora bench --sequence default -o "$OUT/default"
.venv/bin/duge-lora bench --sequence dependent --ablation none -o "$OUT/dependent"
