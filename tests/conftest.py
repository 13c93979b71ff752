"""Shared fixtures. Nothing here downloads: HF_HUB_OFFLINE=1 and every model is the embedded toy or built here."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One data cache for the session (data.cache_root), shared by every test and the processes they start, never the
# user's ~/.cache/duge-lora: a request's images are drawn once per worker of the suite. Tests of the cache itself
# pass their own folder.
SESSION_CACHE = tempfile.mkdtemp(prefix="duge-lora-test-cache-")
os.environ["DUGE_LORA_CACHE"] = SESSION_CACHE

import pytest  # noqa: E402
import torch  # noqa: E402

from duge_lora.distributed import thread_share  # noqa: E402
from duge_lora.models import load_base  # noqa: E402
from tiny import TINY_WORDS, build_tiny_sd  # noqa: E402,F401

# Under pytest-xdist (the README's test command runs `-n auto --dist loadfile`: a file's tests share one worker, so a
# module's fixture, e.g. test_bench's four-run bench, is built once), each worker gets its share of the cores: torch's
# default of one thread per core in every worker oversubscribes the machine, and the processes a test starts inherit
# the share through OMP_NUM_THREADS.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    THREADS = thread_share(int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def data_cache():
    """The session's data cache (DUGE_LORA_CACHE, above), for tests that pass a cache folder by hand."""
    return Path(SESSION_CACHE)


@pytest.fixture(scope="session")
def toy_base():
    """The shipped toy pipeline, loaded once (tests must not attach adapters to it)."""
    return load_base("toy", device="cpu")


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> str:
    return build_tiny_sd(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_sd2(tmp_path_factory) -> str:
    return build_tiny_sd(tmp_path_factory.mktemp("tiny2"), "sd2")


def pytest_unconfigure(config):
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)
