"""`duge-lora push` and `duge-lora pull`: adapters on the Hugging Face Hub (duge_lora/hub.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duge_lora.hub import parse_ref, pull, push
from duge_lora.io import check_output

from .common import JsonOpt, OverwriteOpt
from .output import Output

TokenOpt = Annotated[Optional[str], typer.Option("--token", help="A Hugging Face token (default: HF_TOKEN or the one saved by `hf auth login`).")]


def push_command(
    adapter: Annotated[Path, typer.Argument(help="The adapter folder to upload.", show_default=False)],
    repo: Annotated[str, typer.Option("--repo", help="The Hub repo, user/name (created if new).", show_default=False)],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[Optional[str], typer.Option("--revision", help="The branch to commit to (default: main).")] = None,
    token: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Upload an adapter folder to the Hub with a generated model card (concept, anchor, lineage, the weights' sha256).

    Example: duge-lora push erase-circle --repo you/erase-circle
    """
    parse_ref(repo)
    url = push(adapter, repo, token=token, private=private, revision=revision)
    Output(json_).show({"repo": repo, "commit_url": url}, f"pushed {adapter} to {repo}: {url}")


def pull_command(
    ref: Annotated[str, typer.Argument(help="user/name[@revision] on the Hub.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder to write (default: the repo's name).")] = None,
    token: TokenOpt = None,
    overwrite: OverwriteOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Download an adapter from the Hub and check it (the weights against the sha256 in its card, the adapter against
    its record) before writing it. Offline (HF_HUB_OFFLINE=1) it comes from the Hugging Face cache.

    Example: duge-lora pull you/erase-circle@main -o erase-circle
    """
    repo, _ = parse_ref(ref)
    out = check_output(output or Path(repo.split("/")[1]), overwrite, folder=True)
    pull(ref, out, token=token)
    Output(json_).show({"repo": ref, "output": str(out)}, f"pulled {ref} into {out}")
