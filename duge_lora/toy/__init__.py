"""The embedded toy world and model: duge-lora's default base (shared/design/toyworld.md)."""
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
PIPELINE_DIR = ASSETS / "pipeline"
JUDGE_DIR = ASSETS / "judge"
BUILD_REPORT = ASSETS / "build.json"
