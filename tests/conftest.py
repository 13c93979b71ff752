"""Shared fixtures. Nothing here downloads: HF_HUB_OFFLINE=1 and every model is the embedded toy or built here."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from duge_lora.models import load_base  # noqa: E402
from tiny import TINY_WORDS, build_tiny_sd  # noqa: E402,F401




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
