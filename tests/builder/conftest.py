"""Tiny models that end their turns (so samples finish), and the moto S3 fixtures of tests/publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.publish.conftest import moto_s3, s3_base  # noqa: F401 - fixtures reused here


@pytest.fixture(scope="session")
def ending_models(tmp_path_factory) -> dict[str, Path]:
    """Random tiny models whose end markers are likely enough that most samples finish in a few
    dozen tokens: builds then have generated samples as well as failed ones."""
    import torch

    from tests.tiny_models import build_tiny_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ending_models")
    return {
        "teacher": build_tiny_model(root / "teacher", role="teacher", seed=1, end_probability=0.12),
        "student": build_tiny_model(root / "student", role="student", seed=2, end_probability=0.12),
    }
