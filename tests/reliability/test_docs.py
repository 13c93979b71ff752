"""docs/reliability.md is the suite's own table: every case is in it (regenerate it with
scripts/reliability_table.py when a case is added)."""
from pathlib import Path

from .cases import CASES

DOC = Path(__file__).parent.parent.parent / "docs" / "reliability.md"


def test_every_case_is_in_docs_reliability():
    text = DOC.read_text()
    missing = [c.id for c in CASES if f"| {c.family} | {c.name.replace('|', chr(92) + '|')} |" not in text]
    assert not missing, f"run scripts/reliability_table.py: missing {missing[:5]}"
    processes = text.split("### Cases run as processes")[1].count("\n| ") - 1      # rows, less the header
    assert processes >= 10 and f"**{len(CASES) + processes} cases**" in text
