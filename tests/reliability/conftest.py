"""The fault suite's workspace: good adapters, composed models and a stack, made once per session."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from duge_lora_cli.main import main

REFERENCE = Path(__file__).parent.parent.parent / "adapters" / "toy"


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> SimpleNamespace:
    return make_workspace(tmp_path_factory.mktemp("ws"))


def make_workspace(ws: Path) -> SimpleNamespace:
    """Good inputs in `ws`: two adapters (circle, red after it), their stack, and their compositions."""
    a1, a2 = ws / "circle", ws / "red"
    shutil.copytree(REFERENCE / "circle", a1)
    shutil.copytree(REFERENCE / "red", a2)
    stack = ws / "stack"
    stack.mkdir()
    for a in (a1, a2):
        shutil.copytree(a, stack / a.name)
    (stack / "stack.json").write_text('{"format": "duge-lora-stack/1", "adapters": ["circle", "red"]}\n')
    w = SimpleNamespace(a1=a1, a2=a2, stack=stack, model=ws / "model.safetensors", pipe=ws / "pipe",
                        lora=ws / "stack-lora.safetensors", only_circle=ws / "only-circle.safetensors", ws=ws)
    for argv in (["compose", str(a1), str(a2), "-o", str(w.model)],
                 ["compose", str(a1), str(a2), "--format", "pipeline", "-o", str(w.pipe)],
                 ["compose", str(a1), str(a2), "--method", "cat", "--format", "lora", "-o", str(w.lora)],
                 ["compose", str(a1), "-o", str(w.only_circle)]):
        assert main(argv + ["--no-verify", "--json"]) == 0, argv
    return w


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file and link under the roots: path -> sha256 of its bytes (or the link's target)."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_symlink():
                out[str(p)] = "link:" + str(p.readlink())
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif p.is_dir():
                out[str(p)] = "dir"
    return out
