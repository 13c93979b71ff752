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
    _real_bases(w)
    return w


def _real_bases(w: SimpleNamespace) -> None:
    """A tiny random SD pipeline, a tiny CLIP judge, a tiny classifier judge and a model that is neither (BERT)."""
    try:
        from tiny import TINY_WORDS, build_tiny_classifier, build_tiny_clip, build_tiny_sd
    except ImportError:                          # run as tests.reliability (scripts/reliability_table.py)
        from tests.tiny import TINY_WORDS, build_tiny_classifier, build_tiny_clip, build_tiny_sd
    from transformers import BertConfig, BertModel

    w.tiny = Path(build_tiny_sd(w.ws))
    w.clip = Path(build_tiny_clip(w.ws / "clip", TINY_WORDS))
    w.classifier = Path(build_tiny_classifier(w.ws / "classifier"))
    w.bert = w.ws / "bert"
    BertModel(BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(w.bert)


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
