"""The fault suite: every case of cases.py fails with its exit code and one sentence naming the culprit, prints no
traceback, and leaves every file that existed byte-identical, with nothing half-written beside it."""
from __future__ import annotations

import pytest

from .cases import CASES, fmt, ids
from .runner import context, run_case


def test_the_suite_has_at_least_100_distinct_cases():
    assert len(set(ids())) >= 100


@pytest.mark.parametrize("case", CASES, ids=ids())
def test_fault(case, workspace, tmp_path, capsys):
    outcome = run_case(case, workspace, tmp_path, lambda: capsys.readouterr().err)
    assert outcome.error is None, f"escaped: {outcome.error!r}"
    text = " ".join(outcome.stderr.split())
    assert "Traceback" not in outcome.stderr
    assert text.count("error:") == 1, outcome.stderr        # notes may come first (what is being done), one error
    message = text[text.index("error:"):]
    ctx = context(workspace, tmp_path)
    missing = [fmt(n, ctx) for n in case.names if fmt(n, ctx) not in message]
    assert not missing, f"the message does not name {missing}: {message}"
    assert outcome.code == case.code, f"exit {outcome.code}, expected {case.code}: {message}"
    assert not outcome.changed, f"changed: {outcome.changed}"
    assert not outcome.created, f"left behind: {outcome.created}"
