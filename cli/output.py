"""One output object for every command: results to stdout, as one JSON object (--json) or for a person
(a rich table, or `key: value` lines); notes and progress go to stderr (common.err)."""
from __future__ import annotations

import json
import math

from rich.table import Table

from .common import note, out


def finite(value):
    """value with every NaN or infinite float as null: JSON has no NaN, and a reader's parser would refuse it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


class Output:
    """Where a command's result goes: `show(data, human)` prints JSON under --json, else the human form."""

    def __init__(self, as_json: bool = False):
        self.json = as_json

    def show(self, data: dict, human: Table | str | None = None) -> None:
        """data as one JSON object on stdout (nothing else goes to stdout under --json); otherwise `human`:
        a table or text on stdout, or, when None, every key of data as a `key: value` line."""
        if self.json:
            print(json.dumps(finite(data), indent=None, sort_keys=False, allow_nan=False))
        elif isinstance(human, Table):
            out.print(human)
        elif isinstance(human, str):
            note(human)
        else:
            for k, v in data.items():
                out.print(f"[bold]{k}[/]: {json.dumps(v) if isinstance(v, (dict, list)) else v}", highlight=False)
