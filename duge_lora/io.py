"""Safe output: check an output path up front, write atomically (temp file + rename)."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputError, param


def check_output(path: str | Path, overwrite: bool) -> Path:
    """Refuse an output in a missing folder, or an existing one without overwrite; return the path."""
    path = Path(path)
    if not path.parent.exists():
        raise OutputError(f"Cannot write {path}: the folder {path.parent} does not exist.",
                          f"Create it first (mkdir -p {path.parent}) or choose another output path.")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists and would be overwritten.",
                          f"Pass {param('overwrite')} to replace it, or choose another output path.", option="overwrite")
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on failure remove it.

    Works for files and folders, so a crash or Ctrl-C never leaves a half-written output.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if path.is_dir() and tmp_path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists():
            tmp_path.unlink()
