"""Data-parallel training (distributed.py): 2 real CPU processes (gloo, through accelerate) take the same step as
one process over the same global batch; train --num-processes end to end; its bad input."""
import json
import os
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from duge_lora.distributed import Ranks, launch, shard_rows
from duge_lora_cli.main import main

SCRIPT = Path(__file__).parent / "scripts" / "one_step.py"


def test_shards_cover_each_segment_once():
    seg = {"anchor": slice(0, 4), "preserve": slice(4, 8), "replay": slice(8, 12)}
    shards = [shard_rows(seg, r, 2) for r in range(2)]
    assert sorted(i for rows, _ in shards for i in rows) == list(range(12))
    for rows, s in shards:
        assert [s[k].stop - s[k].start for k in seg] == [2, 2, 2]


def test_two_processes_give_the_one_process_gradient(tmp_path, data_cache):
    out = tmp_path / "grads.safetensors"
    assert launch([str(out), str(data_cache)], 2, entry=(str(SCRIPT),)) == 0
    two = load_file(str(out))
    sys.path.insert(0, str(SCRIPT.parent))
    from one_step import one_step_grads

    one = one_step_grads(Ranks(), data_cache)
    assert len(one) == len(two) > 0
    diff = max(float((g - two[f"g{i}"]).abs().max()) for i, g in enumerate(one))
    scale = max(float(g.abs().max()) for g in one)
    assert scale > 0 and diff <= 1e-5, (diff, scale)


def test_train_with_two_processes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--concept", "circle", "--max-prompts", "8", "--steps", "2", "--batch", "4", "--num-processes", "2",
                 "-o", "a"]) == 0
    record = json.loads((tmp_path / "a" / "duge.json").read_text())
    assert record["hyperparameters"]["processes"] == 2 and record["hyperparameters"]["batch"] == 4
    assert record["hyperparameters"]["max_prompts"] == 8 and 0 < record["data"]["replay_latents"] <= 8
    assert not (tmp_path / "a.partial").exists()


@pytest.mark.parametrize("extra, says", [(["--num-processes", "1000"], "CPU cores"),
                                         (["--num-processes", "2", "--batch", "3"], "--batch 3"),
                                         (["--num-processes", "0"], "at least 1")])
def test_bad_process_counts(extra, says, tmp_path, capsys):
    code = main(["train", "--concept", "circle", "--steps", "1", "-o", str(tmp_path / "a"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err and not (tmp_path / "a").exists()


def test_uce_with_processes_runs_in_one(tmp_path, capsys):
    assert main(["train", "--concept", "circle", "--method", "uce", "--num-processes", "2", "-o", str(tmp_path / "u")]) == 0
    assert "runs in this one process" in capsys.readouterr().err and (tmp_path / "u" / "duge.json").exists()


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_external_launchers_run_two_ranks(launcher, tmp_path):
    """`torchrun --nproc_per_node 2 -m duge_lora_cli.main train ...` and `accelerate launch --multi_gpu
    --num_processes 2 $(which duge-lora) train ...` (gloo on this CPU) train with two ranks too; rank 0 alone speaks."""
    import shutil
    import subprocess

    from duge_lora.distributed import free_port

    port = str(free_port())
    train = ["train", "--concept", "circle", "--max-prompts", "8", "--steps", "2", "--batch", "4", "-o", str(tmp_path / "a")]
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", "-m",
               "duge_lora_cli.main", *train]
    else:
        cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port,
               shutil.which("duge-lora") or str(Path(sys.executable).parent / "duge-lora"), *train]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "a" / "duge.json").read_text())["hyperparameters"]["processes"] == 2
    assert r.stderr.count("erase: circle") == 1          # the other rank is quiet
