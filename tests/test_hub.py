"""The Hub round trip with the real huggingface_hub client against a small Hub on 127.0.0.1 (hub_server.py):
push with a card, pull on a clean cache, pull again offline from the cache, and the error paths."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import constants

from duge_lora_cli.main import main

from hub_server import serve

ROOT = Path(__file__).parent.parent
CIRCLE = ROOT / "adapters" / "toy" / "circle"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fresh local Hub, the client pointed at it and online, with an empty cache of its own."""
    server, state, endpoint = serve()
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield state
    server.shutdown()


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_push_then_pull_on_a_clean_cache_then_offline(hub, tmp_path, capsys, monkeypatch):
    code, out, err = run(["push", str(CIRCLE), "--repo", "tester/erase-circle", "--token", hub.token, "--json"], capsys)
    assert code == 0, err
    assert "/tester/erase-circle/commit/" in json.loads(out)["commit_url"]
    code, out, err = run(["pull", "tester/erase-circle", "-o", str(tmp_path / "pulled"), "--json"], capsys)
    assert code == 0, err
    pulled = tmp_path / "pulled"
    assert (pulled / "pytorch_lora_weights.safetensors").read_bytes() == (CIRCLE / "pytorch_lora_weights.safetensors").read_bytes()
    card = (pulled / "README.md").read_text()
    assert card.startswith("---") and "duge-lora" in card and "weights_sha256" in card and card.count("\n---\n") == 1
    # the pulled folder is an adapter like any other: compose it
    assert main(["compose", str(pulled), "-o", str(tmp_path / "m.safetensors"), "--no-verify", "--json"]) == 0
    capsys.readouterr()
    # offline, from the cache; and with nothing cached, one sentence
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["pull", "tester/erase-circle", "-o", str(tmp_path / "again"), "--json"]) == 0
    assert "comes from the Hugging Face cache" in capsys.readouterr().err
    assert (tmp_path / "again" / "pytorch_lora_weights.safetensors").exists()
    code, _, err = run(["pull", "tester/never-pushed", "-o", str(tmp_path / "none")], capsys)
    assert code == 4 and "offline" in err and "Traceback" not in err and not (tmp_path / "none").exists()


def test_hub_error_paths_are_one_sentence(hub, tmp_path, capsys, monkeypatch):
    import huggingface_hub.utils._http as http
    monkeypatch.setattr(http.time, "sleep", lambda s: None)      # the client's retries, without their waits
    # a rejected token
    code, _, err = run(["push", str(CIRCLE), "--repo", "tester/x", "--token", "wrong"], capsys)
    assert code == 4 and "token" in err and "Traceback" not in err
    # a repo, and a revision, that do not exist
    code, _, err = run(["pull", "tester/missing", "-o", str(tmp_path / "a")], capsys)
    assert code == 3 and "tester/missing" in err
    assert main(["push", str(CIRCLE), "--repo", "tester/erase-circle", "--token", hub.token, "--json"]) == 0
    capsys.readouterr()
    code, _, err = run(["pull", "tester/erase-circle@nope", "-o", str(tmp_path / "b")], capsys)
    assert code == 3 and "nope" in err
    # a failure in the middle of an upload: nothing changed on the Hub, the same command then completes
    hub.fail_next, hub.failures = "commit", 100
    code, _, err = run(["push", str(ROOT / "adapters/toy/red"), "--repo", "tester/erase-red", "--token", hub.token], capsys)
    assert code == 4 and "rerun" in err
    hub.failures = 0
    assert main(["push", str(ROOT / "adapters/toy/red"), "--repo", "tester/erase-red", "--token", hub.token, "--json"]) == 0
    # a file changed on the Hub after the push: the sha256 in the card does not match, nothing is written
    oid, files = hub.files("tester/erase-circle", "main")
    files["pytorch_lora_weights.safetensors"] = (ROOT / "adapters/toy/red/pytorch_lora_weights.safetensors").read_bytes()
    code, _, err = run(["pull", "tester/erase-circle", "-o", str(tmp_path / "c")], capsys)
    assert code == 3 and "sha256" in err and not (tmp_path / "c").exists()
    # an existing output is not replaced without --overwrite
    (tmp_path / "d").mkdir()
    code, _, err = run(["pull", "tester/erase-red", "-o", str(tmp_path / "d")], capsys)
    assert code == 4 and "--overwrite" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_hub_id_works_wherever_an_adapter_folder_does(hub, tmp_path, capsys, monkeypatch):
    """compose, train --after, sample --adapters and inspect take user/name[@rev]; lineage records the Hub parent as
    id@commit; hub list finds it by concept and base; offline, the same Hub ids resolve from the cache."""
    assert main(["push", str(CIRCLE), "--repo", "tester/erase-circle", "--token", hub.token, "--json"]) == 0
    sha = json.loads(capsys.readouterr().out)["commit_url"].rsplit("/", 1)[1]
    assert main(["compose", "tester/erase-circle", "-o", str(tmp_path / "m.safetensors"), "--no-verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["manifest"]["adapters"][0]["path"] == f"tester/erase-circle@{sha}"
    assert main(["train", "--concept", "red", "--after", f"tester/erase-circle@{sha}", "--max-prompts", "8", "--steps", "2", "-o",
                 str(tmp_path / "red"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parents"][0]["path"] == f"tester/erase-circle@{sha}"
    assert main(["hub", "list", "--concept", "circle", "--base", "toy", "--json"]) == 0
    assert [m["id"] for m in json.loads(capsys.readouterr().out)["adapters"]] == ["tester/erase-circle"]
    assert main(["hub", "list", "--concept", "red", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["adapters"] == []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["sample", "--adapters", "tester/erase-circle", "a red circle", "-n", "1", "-o", str(tmp_path / "g.png"),
                 "--json"]) == 0
    assert main(["compose", "tester/erase-circle", "-o", str(tmp_path / "offline.safetensors"), "--no-verify", "--json"]) == 0
    capsys.readouterr()
    assert main(["inspect", "tester/erase-circle", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["concept"] == "circle"


def test_a_pickle_only_repo_and_a_cut_download_are_one_sentence(hub, tmp_path, capsys, monkeypatch):
    """A repo holding only pickle weights is refused without downloading them; a download cut in the middle leaves
    no output folder, and the same command then completes."""
    import huggingface_hub.utils._http as http
    from huggingface_hub import HfApi

    monkeypatch.setattr(http.time, "sleep", lambda s: None)
    api = HfApi(endpoint=hub_endpoint(), token=hub.token)
    api.create_repo("tester/pickled")
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "pytorch_lora_weights.bin").write_bytes(b"\x80\x04K\x01.")
    api.upload_folder(repo_id="tester/pickled", folder_path=tmp_path / "up")
    code, _, err = run(["pull", "tester/pickled", "-o", str(tmp_path / "p")], capsys)
    assert code == 3 and "pickle" in err and not (tmp_path / "p").exists()
    assert main(["push", str(CIRCLE), "--repo", "tester/erase-circle", "--token", hub.token, "--json"]) == 0
    capsys.readouterr()
    hub.fail_next, hub.failures = "resolve", 100
    code, _, err = run(["pull", "tester/erase-circle", "-o", str(tmp_path / "q")], capsys)
    assert code == 4 and "Traceback" not in err and not (tmp_path / "q").exists()
    hub.failures = 0
    assert main(["pull", "tester/erase-circle", "-o", str(tmp_path / "q"), "--json"]) == 0
    assert (tmp_path / "q" / "pytorch_lora_weights.safetensors").exists()


def hub_endpoint() -> str:
    import os
    return os.environ["HF_ENDPOINT"]


def test_a_stack_round_trips(hub, tmp_path, capsys):
    """push a stack folder (its card lists every member's sha256), pull it back, and compose the pulled stack."""
    import shutil

    stack = tmp_path / "s"
    stack.mkdir()
    for name in ("circle", "red"):
        shutil.copytree(ROOT / "adapters" / "toy" / name, stack / name)
    (stack / "stack.json").write_text(json.dumps({"format": "duge-lora-stack/1", "adapters": ["circle", "red"]}))
    assert main(["push", str(stack), "--repo", "tester/two", "--token", hub.token, "--json"]) == 0
    capsys.readouterr()
    oid, files = hub.files("tester/two", "main")
    assert "circle/pytorch_lora_weights.safetensors" in files and b"weights_sha256" in files["README.md"]
    assert main(["pull", "tester/two", "-o", str(tmp_path / "pulled"), "--json"]) == 0
    assert json.loads((tmp_path / "pulled" / "stack.json").read_text())["adapters"] == ["circle", "red"]
    assert main(["compose", str(tmp_path / "pulled"), "-o", str(tmp_path / "m.safetensors"), "--no-verify", "--json"]) == 0
    assert [a["concept"] for a in json.loads(capsys.readouterr().out.splitlines()[-1])["adapters"]] == ["circle", "red"]


def test_a_hub_base_in_the_cache_has_the_stored_fingerprint(hub, monkeypatch):
    """A base given as a Hub id takes its identity from the UNet file in the real cache layout (nothing is downloaded
    for it), so an adapter trained on the folder applies to the same weights loaded by id, in bf16 too."""
    from huggingface_hub import HfApi, snapshot_download

    from duge_lora import toy
    from duge_lora.adapter import file_fingerprint
    from duge_lora.formats import UNET_WEIGHTS
    from duge_lora.models import load_base

    import os

    api = HfApi(endpoint=os.environ["HF_ENDPOINT"], token=hub.token)
    api.create_repo("tester/toy-base")
    api.upload_folder(repo_id="tester/toy-base", folder_path=toy.PIPELINE_DIR)
    snapshot_download("tester/toy-base", endpoint=os.environ["HF_ENDPOINT"], cache_dir=os.environ["HF_HUB_CACHE"])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", os.environ["HF_HUB_CACHE"])   # diffusers reads the default cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    base = load_base("tester/toy-base", "cpu", mixed_precision="bf16")
    assert base.source == "tester/toy-base" and constants.HF_HUB_CACHE in str(base.pipe.unet.config._name_or_path)
    assert base.fingerprint == file_fingerprint(toy.PIPELINE_DIR / UNET_WEIGHTS)
    from duge_lora.compose import Item, apply_items
    from duge_lora.records import resolve_adapter

    assert apply_items(base, [Item(resolve_adapter(CIRCLE))]).manifest["adapters"]
