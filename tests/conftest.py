"""Session-wide fixtures shared by every test area."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # test logs keep tessy's own progress only


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """A teacher (harmony markers) and a student (<think> markers) with different tokenizers."""
    from tests.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "teacher": build_tiny_model(root / "teacher", role="teacher", seed=1),
        "student": build_tiny_model(root / "student", role="student", seed=2),
    }
