"""Adapters on the Hugging Face Hub: push a folder with a generated model card, pull one back and verify it.

Everything goes through huggingface_hub (HfApi.create_repo / upload_folder, snapshot_download, ModelCard); the
endpoint is read from HF_ENDPOINT at each call, so a test can point it at a local server. A pushed card records
the sha256 of the weights file; a pull checks the downloaded file against it (and the adapter against its own
record: adapter_checks) before anything is written where the user asked.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import AdapterError, BadInput, EnvironmentProblem, UsageError, param
from .formats import WEIGHTS_NAME
from .io import atomic_path
from .records import file_sha256, resolve_adapters

TAGS = ["duge-lora", "concept-erasure", "lora", "diffusers", "stable-diffusion"]


@contextmanager
def _quiet():
    """huggingface_hub's own warnings and bars off during a transfer: the library never prints (its failures come
    back as one DugeError each)."""
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars, logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    disable_progress_bars()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        enable_progress_bars()


def offline() -> bool:
    """HF_HUB_OFFLINE, as huggingface_hub read it at import or as the environment says now."""
    from huggingface_hub import constants
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE") == "1"


def endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def cache_dir() -> str | None:
    return os.environ.get("HF_HUB_CACHE") or None


def parse_ref(ref: str) -> tuple[str, str | None]:
    """'user/name[@revision]' -> (repo id, revision or None)."""
    repo, _, rev = ref.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UsageError(f"{ref!r} is not a Hub repo id like user/name[@revision].", "Write it like you/erase-circle.",
                         option="repo")
    return repo, rev or None


def card_text(folder: Path, members: list) -> str:
    """The Hub model card: ModelCardData (library, license, tags, base) with our fields (concept, anchor, preserve,
    lineage, the weights' sha256; for a stack, one entry per member) above the adapter's own card."""
    from huggingface_hub import ModelCard

    from .stack import is_stack

    own = folder / "README.md"
    title = "a duge-lora stack: " + ", ".join(m.concept for m in members) if is_stack(folder) else f"erase {members[0].concept}"
    card = ModelCard(own.read_text() if own.exists() else f"---\n---\n# {title}\n")
    data, fp = card.data, members[0].record.base.fingerprint
    data.library_name, data.license = "diffusers", data.license or "openrail"
    data.tags = list(dict.fromkeys([*(data.tags or []), *TAGS, *(f"erases-{m.concept}" for m in members),
                                    *([f"duge-base-{fp}"] if fp else [])]))
    if "/" in (members[0].record.base.name or ""):
        data.base_model = members[0].record.base.name
    entries = [_entry(m) for m in members]
    data.duge_lora = {"stack": entries, "base_fingerprint": fp} if is_stack(folder) else entries[0] | {"base_fingerprint": fp}
    return str(card)


def _entry(a) -> dict:
    req = a.record.request
    return {"name": a.path.name, "concept": a.concept, "anchor": req.anchor if req else None,
            "preserve": list(req.preserve) if req else [], "weights_sha256": a.sha256,
            "parents": [{"concept": p.concept, "sha256": p.sha256, "path": p.path} for p in a.record.parents]}


def push(folder: Path, repo: str, *, token: str | None = None, private: bool = False, revision: str | None = None) -> str:
    """Upload an adapter or stack folder to `repo` (created if new) with its Hub card; returns the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from .stack import LOCK_FILE

    folder = Path(folder)
    members = resolve_adapters([folder])                           # only valid adapters leave this machine
    api = HfApi(endpoint=endpoint(), token=token)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "adapter"
        shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(LOCK_FILE))
        (staged / "README.md").write_text(card_text(folder, members))
        message = "duge-lora: " + ", ".join(f"erase {m.concept}" for m in members)
        try:
            with _quiet():
                api.create_repo(repo, private=private, exist_ok=True)
                info = api.upload_folder(repo_id=repo, folder_path=staged, revision=revision, commit_message=message)
        except HfHubHTTPError as exc:
            raise _hub_error(exc, repo) from None
        except Exception as exc:  # noqa: BLE001 - a cut connection arrives as the HTTP library's own exception
            raise _network_error(exc, repo) from None
    return info.commit_url


def pull(ref: str, output: Path, *, token: str | None = None) -> Path:
    """Download `user/name[@rev]` into `output` (atomically), after checking its weights against the card's sha256
    and the adapter against its record. Offline (HF_HUB_OFFLINE=1) it comes from the Hugging Face cache."""
    from .records import is_hub_ref

    snap, _ = snapshot(ref, token)
    for parent in (p for a in resolve_adapters([snap]) for p in a.record.parents):   # Hub parents: into the cache too
        if is_hub_ref(parent.path):
            snapshot(parent.path, token)
    with atomic_path(output) as tmp:
        shutil.copytree(snap, tmp, ignore=shutil.ignore_patterns(".cache"))
    return output


def snapshot(ref: str, token: str | None = None) -> tuple[Path, str]:
    """A Hub adapter in the Hugging Face cache (downloaded if needed, checked against its card): its snapshot folder
    and `user/name@commit`, the name lineage records so that a chain rebuilt elsewhere is the same chain."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo, rev = parse_ref(ref)
    try:
        with _quiet():
            snap = Path(snapshot_download(repo, revision=rev, token=token, endpoint=endpoint(), cache_dir=cache_dir(),
                                          allow_patterns=["*.safetensors", "*.json", "*.md"]))
    except LocalEntryNotFoundError:
        raise EnvironmentProblem(f"{ref} is not in the Hugging Face cache, and this machine is offline "
                                 "(HF_HUB_OFFLINE=1) or cannot reach the Hub.", "Pull it once while online.") from None
    except HfHubHTTPError as exc:
        raise _hub_error(exc, repo, rev) from None
    except Exception as exc:  # noqa: BLE001 - a cut connection arrives as the HTTP library's own exception
        raise _network_error(exc, repo) from None
    if not (snap / WEIGHTS_NAME).exists() and not (snap / "stack.json").exists():
        raise BadInput(f"{ref} holds no {WEIGHTS_NAME} (pickle files are never downloaded).",
                       "Use a repo pushed by `duge-lora push`.")
    _check_sha(snap, ref)
    return snap, f"{repo}@{snap.name}"


def _check_sha(snap: Path, ref: str) -> None:
    from huggingface_hub import ModelCard

    meta = ModelCard.load(snap / "README.md").data.to_dict() if (snap / "README.md").exists() else {}
    ours = meta.get("duge_lora") or {}
    for entry in ours.get("stack") or [ours | {"name": ""}]:
        file = snap / entry["name"] / WEIGHTS_NAME if entry["name"] else snap / WEIGHTS_NAME
        want, got = entry.get("weights_sha256"), file_sha256(file) if file.exists() else "missing"
        if want and want != got:
            raise AdapterError(f"The weights of {file.relative_to(snap)} pulled from {ref} do not match the sha256 in "
                               f"its card ({got[:12]}... vs {want[:12]}...).",
                               "They were changed after the push or damaged on the way; pull again.")


def _network_error(exc: Exception, repo: str) -> Exception:
    """A connection that failed or was cut (httpx / httpcore / h11 / OSError): one sentence, or `exc` itself when it
    is not a network error (a bug, which must surface)."""
    modules = {c.__module__.split(".")[0] for c in type(exc).__mro__}
    if isinstance(exc, (OSError, ConnectionError)) or modules & {"httpx", "httpx2", "httpcore", "httpcore2", "h11", "requests", "urllib3"}:
        return EnvironmentProblem(f"The connection to the Hub failed while transferring {repo} ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}).",
                                  "Nothing was written here; rerun the same command.")
    return exc


def _hub_error(exc, repo: str, rev: str | None = None) -> Exception:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        return EnvironmentProblem(f"The Hub refused the token for {repo} (401).",
                                  f"Pass a write token with {param('token')}, or log in with `hf auth login`.",
                                  option="token")
    if status == 404:
        what = f"revision {rev!r} of {repo}" if rev else repo
        return BadInput(f"The Hub has no {what} (or it is private to another account).",
                        "Check the id and revision, and the token for a private repo.")
    return EnvironmentProblem(f"The Hub failed for {repo} ({status}: {str(exc).splitlines()[0]}).",
                              "Nothing was changed here; rerun the same command.")


def search(concept: str | None = None, base_fingerprint: str | None = None, token: str | None = None) -> list[dict]:
    """The duge-lora adapters on the Hub (HfApi.list_models by tag): for a concept, for a base (its fingerprint)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    tags = ["duge-lora", *([f"erases-{concept}"] if concept else []), *([f"duge-base-{base_fingerprint}"] if base_fingerprint else [])]
    try:
        models = HfApi(endpoint=endpoint(), token=token).list_models(filter=tags)
        return [{"id": m.id, "tags": list(m.tags or [])} for m in models]
    except HfHubHTTPError as exc:
        raise _hub_error(exc, "the model list") from None
