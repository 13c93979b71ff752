#!/usr/bin/env bash
# Set up duge-lora in ./.venv on a fresh machine: torch first (CPU build by default, override with
# TORCH_SPEC, e.g. TORCH_SPEC="torch==2.13.0" or a CUDA wheel), then the project with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
quiet() { grep -v "^WARNING: Location" || true; }
.venv/bin/python -m pip install -q --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}" 2>&1 | quiet
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | quiet
.venv/bin/python -c "import torch, duge_lora; print('duge-lora', duge_lora.__version__, 'on torch', torch.__version__)"
