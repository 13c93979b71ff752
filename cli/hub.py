"""`duge-lora push` and `duge-lora pull`: adapters on the Hugging Face Hub (duge_lora/hub.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duge_lora.hub import offline, parse_ref, pull, push, search
from duge_lora.io import check_output

from .common import JsonOpt, OverwriteOpt, note
from .output import Output

TokenOpt = Annotated[Optional[str], typer.Option("--token", help="A Hugging Face token (default: HF_TOKEN or the one saved by `hf auth login`).")]


def push_command(
    adapter: Annotated[Path, typer.Argument(help="The adapter or stack folder to upload.", show_default=False)],
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
    if offline():
        note(f"offline (HF_HUB_OFFLINE=1): {ref} comes from the Hugging Face cache")
    pull(ref, out, token=token)
    Output(json_).show({"repo": ref, "output": str(out)}, f"pulled {ref} into {out}")


app = typer.Typer(help="The duge-lora adapters on the Hugging Face Hub.", no_args_is_help=True)


@app.command("list")
def list_command(
    concept: Annotated[Optional[str], typer.Option("--concept", help="Only adapters that erase this concept.")] = None,
    base: Annotated[Optional[str], typer.Option("--base", help="Only adapters for this base: 'toy', a local folder, or a base fingerprint.")] = None,
    token: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List the duge-lora adapters on the Hub (by their tags), optionally for one concept and one base.

    Example: duge-lora hub list --base toy --concept circle
    """
    found = search(concept, _fingerprint(base), token)
    Output(json_).show({"adapters": found}, "\n".join(m["id"] for m in found) or "no duge-lora adapters found")


def _fingerprint(base: str | None) -> str | None:
    """A base's fingerprint: given as one, or read from a local base's UNet file."""
    if base is None or (len(base) == 16 and all(c in "0123456789abcdef" for c in base)):
        return base
    from duge_lora.adapter import file_fingerprint
    from duge_lora.formats import UNET_WEIGHTS
    from duge_lora.models import resolve_base

    return file_fingerprint(Path(resolve_base(base)[0]) / UNET_WEIGHTS)
