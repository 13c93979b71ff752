"""One output object for every command: results to stdout, as one JSON object (--json) or for a person
(a rich table, or `key: value` lines); notes and progress go to stderr (common.err)."""
from __future__ import annotations

import json

from rich.table import Table

from .common import note, out


class Output:
    """Where a command's result goes: `show(data, human)` prints JSON under --json, else the human form."""

    def __init__(self, as_json: bool = False):
        self.json = as_json

    def show(self, data: dict, human: Table | str | None = None) -> None:
        """data as one JSON object on stdout (nothing else goes to stdout under --json); otherwise `human`:
        a table or text on stdout, or, when None, every key of data as a `key: value` line."""
        if self.json:
            print(json.dumps(data, indent=None, sort_keys=False))
        elif isinstance(human, Table):
            out.print(human)
        elif isinstance(human, str):
            note(human)
        else:
            for k, v in data.items():
                out.print(f"[bold]{k}[/]: {json.dumps(v) if isinstance(v, (dict, list)) else v}", highlight=False)
