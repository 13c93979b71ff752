#!/usr/bin/env bash
# The main job on the embedded toy model: three unlearning requests one after another (an object, a colour,
# a character), composed into one model; then what is gone and what stayed, as pictures and figures.
# Writes out/demo/: the stack of adapters, the composed pipeline, before-after.png; about 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
D=.venv/bin/duge-lora
O=out/demo
rm -rf "$O"; mkdir -p "$O"
for concept in circle red "Mickey Mouse"; do
  $D train --concept "$concept" --stack $O/stack
done
$D compose $O/stack/circle $O/stack/red $O/stack/mickey-mouse --format pipeline -o $O/unlearned
$D sample "a red solid circle" "a blue striped disc" "a green solid oval" "a red outlined square" \
    "a blue solid mickey" "a yellow striped mouse" "a purple solid kitty" -n 4 \
    --adapters $O/stack/circle $O/stack/red $O/stack/mickey-mouse --compare -o $O/before-after.png
$D eval --base $O/unlearned --concept circle red mickey
echo "before/after grid: $O/before-after.png   composed model: $O/unlearned (a diffusers pipeline folder)"
