"""The command line end to end: sample, eval, toy, and every expected failure as one sentence."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from duge_lora import toy
from duge_lora_cli.main import main

BIN = Path(sys.executable).parent / "duge-lora"


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


REFERENCE = Path(__file__).parent.parent / "adapters" / "toy"


def test_prompts_may_follow_a_list_of_adapters(tmp_path, capsys):
    """--adapters A B ends at the first word that is not an adapter, so prompts may follow it."""
    out = tmp_path / "x.png"
    circle, red = str(REFERENCE / "circle"), f"{REFERENCE / 'red'}:0.5"
    code, stdout, stderr = run(["sample", "--adapters", circle, red, "a red circle", "a blue star", "-n", "1",
                                "-o", str(out), "--json"], capsys)
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["adapters"] == [circle, red] and result["prompts"] == ["a red circle", "a blue star"]
    assert out.exists()


def test_a_concept_of_two_words_is_never_two_concepts(tmp_path, capsys):
    code, _, stderr = run(["train", "--concept", "red", "circle", "--steps", "1", "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "unexpected extra argument" in stderr and "circle" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, words", [
    (["train", "--concept", "circle", "--steps", "0"], ["--steps"]),
    (["train", "--stepz", "3"], ["No such option", "--stepz"]),
    (["train"], ["--concept"]),
    (["frobnicate"], ["frobnicate"]),
])
def test_usage_errors_are_one_sentence(args, words, capsys):
    code, _, stderr = run(args, capsys)
    assert code == 2 and stderr.startswith("error:") and "Traceback" not in stderr
    assert all(w in stderr for w in words), stderr


def test_sample_writes_a_grid_with_one_row_per_prompt(tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, stdout, _ = run(["sample", "a red solid circle", "a blue striped star", "-n", "3", "-o", str(out), "--json"], capsys)
    assert code == 0
    result = json.loads(stdout)
    assert result["output"] == str(out) and result["n"] == 3 and result["base"] == "toy"
    img = Image.open(out)
    assert img.height > 2 * 96 and img.width > 3 * 96


def test_sample_runs_as_a_real_process(tmp_path):
    """The installed console script, 4 prompts x 4 images (its speed is measured in docs/benchmarks.md)."""
    out = tmp_path / "g.png"
    proc = subprocess.run([str(BIN), "sample", "a red circle", "a striped star", "a green kitty", "a blue robo",
                           "-n", "4", "-o", str(out)], capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "base: toy" in proc.stderr and Image.open(out).size[1] > 4 * 96


def test_eval_reports_per_axis_accuracy(capsys):
    code, stdout, _ = run(["eval", "-n", "1", "--json"], capsys)
    assert code == 0
    result = json.loads(stdout)
    assert set(result["accuracy"]) == {"object", "color", "style", "character"}
    assert all(0.0 <= v <= 1.0 for v in result["accuracy"].values())
    assert result["n_images"] == 198 and result["seconds"] > 0
    assert result["accuracy"]["color"] > 0.8    # the shipped model draws what it is asked


def test_toy_path_and_vocab(capsys):
    code, stdout, _ = run(["toy", "path"], capsys)
    assert code == 0 and Path(stdout.strip()) == toy.PIPELINE_DIR and (Path(stdout.strip()) / "model_index.json").exists()
    code, stdout, _ = run(["toy", "vocab", "--json"], capsys)
    assert code == 0 and "circle" in json.loads(stdout)["object"]


@pytest.mark.parametrize("args, words, exit_code", [
    (["--base", "no/such-model"], ["no/such-model", "offline"], 4),
    (["--base", "./missing-folder"], ["./missing-folder"], 3),
    (["a zebra on a skateboard"], ["zebra", "skateboard", "toy vocab"], 2),
])
def test_bad_input_is_one_sentence_and_its_exit_code(tmp_path, capsys, args, words, exit_code):
    out = tmp_path / "g.png"
    prompt = [] if not args[0].startswith("--") else ["a red circle"]
    code, stdout, stderr = run(["sample", *prompt, *args, "-n", "1", "-o", str(out)], capsys)
    assert code == exit_code and "Traceback" not in stderr and stderr.startswith("error:")
    assert all(w in stderr for w in words), stderr
    assert not out.exists()


def test_output_in_missing_folder_and_existing_output(tmp_path, capsys):
    code, _, stderr = run(["sample", "a red circle", "-n", "1", "-o", str(tmp_path / "nope" / "g.png")], capsys)
    assert code == 4 and "does not exist" in stderr
    existing = tmp_path / "g.png"
    existing.write_bytes(b"precious")
    code, _, stderr = run(["sample", "a red circle", "-n", "1", "-o", str(existing)], capsys)
    assert code == 4 and "--overwrite" in stderr and existing.read_bytes() == b"precious"
    code, _, _ = run(["sample", "a red circle", "-n", "1", "-o", str(existing), "--overwrite"], capsys)
    assert code == 0 and existing.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]      # no temp files left behind


def test_expected_failure_has_no_traceback_in_a_real_process(tmp_path):
    proc = subprocess.run([str(BIN), "sample", "a purple unicorn", "-o", str(tmp_path / "x.png")],
                          capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and "unicorn" in proc.stderr and "Traceback" not in proc.stderr


def test_an_error_after_a_signal_is_that_interruption(monkeypatch, tmp_path, capsys):
    """Native code can turn the KeyboardInterrupt raised in its callbacks into another error (a Ctrl-C during
    safetensors' load_file came out as this ValueError, and a traceback). After a signal, an unexpected error is
    that interruption: one sentence and 130 or 143 (cli/main.py, _as_interrupt). Without a signal it stays a bug."""
    import signal

    import duge_lora_cli.compose as compose_cli
    import duge_lora_cli.main as cli_main

    def fails(*args, **kwargs):
        raise ValueError("could not determine the shape of object type 'torch.storage.UntypedStorage'")

    monkeypatch.setattr(compose_cli, "compose_adapters", fails)
    argv = ["compose", str(Path(__file__).parent.parent / "adapters" / "toy" / "circle"), "-o", str(tmp_path / "m.safetensors")]
    for sig, code, how in ((signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")):
        monkeypatch.setattr(cli_main, "RECEIVED", [sig])
        assert cli_main.main(argv) == code
        err = capsys.readouterr().err
        assert f"interrupted ({how})" in err and err.count("error:") == 1
    monkeypatch.setattr(cli_main, "RECEIVED", [])
    with pytest.raises(ValueError):
        cli_main.main(argv)
