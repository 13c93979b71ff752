"""The embedded toy world and model: the default --base of duge-lora (shared/design/toyworld.md)."""
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
PIPELINE_DIR = ASSETS / "pipeline"
JUDGE_DIR = ASSETS / "judge"
BUILD_REPORT = ASSETS / "build.json"
