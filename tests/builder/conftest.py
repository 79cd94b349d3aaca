"""Tiny models that end their turns (so samples finish), and the moto S3 fixtures of tests/publish."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tessy_core.paths import cache_dir

from tests.publish.conftest import moto_s3, s3_base  # noqa: F401 - fixtures reused here


@pytest.fixture(scope="session")
def ending_models() -> dict[str, Path]:
    """Random tiny models whose end markers are likely enough that most samples finish in a few
    dozen tokens: builds then have generated samples as well as failed ones.

    They live at one fixed place per machine: a model's path is part of the generation config, so
    of every sample id and seed, and a fixed path makes these builds' outcomes the same in every
    test session (a fresh temp path each session made them a new draw each time)."""
    import torch

    torch.set_num_threads(1)
    root = cache_dir() / "test-models" / "ending-v1"
    return {
        "teacher": _built_once(root / "teacher", role="teacher", seed=1),
        "student": _built_once(root / "student", role="student", seed=2),
    }


def _built_once(path: Path, *, role: str, seed: int) -> Path:
    from tests.tiny_models import build_tiny_model

    if (path / "config.json").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    build_tiny_model(staging, role=role, seed=seed, end_probability=0.12)
    try:
        staging.rename(path)  # atomic: a concurrent session sees a whole model folder or none
    except OSError:  # another session got there first; its folder is the same model
        shutil.rmtree(staging, ignore_errors=True)
    return path
