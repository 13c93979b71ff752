"""`duge-lora attack` (attack.py): textual inversion into the erased model brings a concept back; its ceiling on the
base; seeded; bad input."""
import json
from pathlib import Path

import pytest

from duge_lora_cli.main import main

ADAPTER = str(Path(__file__).parent.parent / "adapters" / "toy" / "circle")


def test_attack_recovers_an_erased_concept_and_reports_its_ceiling(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DUGE_LORA_CACHE", str(tmp_path / "cache"))
    args = ["attack", "--concept", "circle", "--adapters", ADAPTER, "--steps", "60", "--json"]
    assert main(args) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["plain"] <= 0.1                      # the adapter erases the plain prompts
    assert r["ceiling"] >= 0.9                    # the attack works on the base
    assert 0.0 <= r["recovered"] <= 1.0 and r["images"] == 18 and r["steps"] == 60
    assert main(args) == 0                        # seeded: the same figures again
    again = json.loads(capsys.readouterr().out)
    assert {k: again[k] for k in ("recovered", "ceiling", "plain", "final_loss")} == \
           {k: r[k] for k in ("recovered", "ceiling", "plain", "final_loss")}


@pytest.mark.parametrize("extra, says", [(["--steps", "0"], "--steps"), (["--steps", "10000000"], "--steps"),
                                         (["--lr", "nan"], "--lr"), (["--concept", "dragon"], "dragon")])
def test_bad_attack_input(extra, says, capsys):
    argv = ["attack", "--concept", "circle", *extra]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err
