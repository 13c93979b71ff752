"""Safe output: check an output path up front, and write it atomically so that nothing is ever lost.

The one writer (atomic_path) builds the new file or folder under a temporary name beside the output. A file is
then renamed over the old one (one atomic step). A folder cannot be renamed over a folder, so the old one is first
renamed aside (`.NAME.aside`), the new one renamed in, and only then the aside deleted: a kill at any point leaves
the old output or the new one, never a mix, and the next run that writes there (restore_aside) puts a stranded
aside folder back and removes temporaries whose writer has died (names carry the writer's pid).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputError, UsageError, param

ASIDE = ".aside"


def _aside(path: Path) -> Path:
    return path.with_name(f".{path.name}{ASIDE}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def restore_aside(path: Path) -> None:
    """Undo what a killed writer of `path` left: put a stranded aside folder back, remove its dead temporaries."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    aside = _aside(path)
    if aside.exists():
        if path.exists():
            shutil.rmtree(aside, ignore_errors=True)      # the new one was already in: the old one was going
        else:
            os.replace(aside, path)                        # killed between the two renames: the old one comes back
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


def check_output(path: str | Path, overwrite: bool, folder: bool | None = None) -> Path:
    """Refuse an output in a missing folder, or an existing one without overwrite (or of the other kind: a folder
    where a file goes, `folder`=False, or the reverse); return the path."""
    path = Path(path)
    restore_aside(path)
    if not path.parent.exists():
        raise OutputError(f"Cannot write {path}: the folder {path.parent} does not exist.",
                          f"Create it first (mkdir -p {path.parent}) or choose another output path.")
    if not path.parent.is_dir():
        raise OutputError(f"Cannot write {path}: {path.parent} is a file, not a folder.", "Choose another output path.")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists and would be overwritten.",
                          f"Pass {param('overwrite')} to replace it, or choose another output path.", option="overwrite")
    if path.exists() and folder is not None and path.is_dir() != folder:
        kind = "a folder" if path.is_dir() else "a file"
        raise OutputError(f"{path} is {kind}, and this output is {'a folder' if folder else 'a file'}.",
                          "Choose another output path.")
    return path


def check_paths(output: str | Path, inputs: list) -> None:
    """Refuse an output that is one of the inputs, inside one, or holds one (writing it would destroy them)."""
    out = Path(output).resolve()
    for given in inputs:
        src = Path(given).resolve()
        if out == src or src in out.parents or out in src.parents:
            raise UsageError(f"The output {output} would overwrite the input {given}.",
                             "Write to another path; an output can never be one of the inputs.", option="output")


def _usual_modes(src: Path) -> None:
    """Give a finished output the permissions of any new file (0644 / 0755 under the usual umask): some writers
    (safetensors, mkdtemp) create 0600 / 0700, which other users and tools could not read."""
    mask = os.umask(0)
    os.umask(mask)
    for p in [src, *src.rglob("*")] if src.is_dir() else [src]:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def swap_in(src: Path, path: Path) -> None:
    """Move a finished file or folder `src` to `path` (see the module doc: a folder goes through an aside)."""
    _usual_modes(src)
    if path.is_dir() and not path.is_symlink():
        aside = _aside(path)
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(path, aside)
        try:
            os.replace(src, path)
        except BaseException:
            if not path.exists():
                os.replace(aside, path)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(src, path)


def stage_folder(path: Path) -> Path:
    """A new hidden folder beside `path` to build an output (and the files that go with it) under its own name,
    to be checked before it is published; removed by restore_aside if its writer dies."""
    stage = path.parent / f".{path.name}.{os.getpid()}.stage.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    return stage


def publish(stage: Path, path: Path) -> None:
    """Move every entry of a stage folder beside `path` (the output first, its companions after), then drop it."""
    entries = sorted(stage.iterdir(), key=lambda p: p.name != path.name)
    for entry in entries:
        swap_in(entry, path.parent / entry.name)
    shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success move it to `path` (see the module doc), on failure remove it.

    Works for files and folders, so a crash or Ctrl-C never leaves a half-written or mixed output.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        swap_in(tmp_path, path)
    finally:
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists():
            tmp_path.unlink()
