#!/usr/bin/env bash
# The main job on the embedded toy model: erase a concept, then show what is gone and what stayed.
# Writes out/erase-circle (the adapter), out/before-after.png (the grid) and prints the judge's figures.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
D=.venv/bin/duge-lora
mkdir -p out
$D train --concept circle -o out/erase-circle --overwrite
$D sample "a red solid circle" "a blue striped disc" "a green outlined circle" "a purple solid oval" \
    "a yellow striped heart" "a purple solid mickey" -n 4 --adapters out/erase-circle --compare \
    -o out/before-after.png --overwrite
$D eval --adapters out/erase-circle
echo "before/after grid: out/before-after.png"
