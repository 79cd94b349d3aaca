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
def tiny_models() -> dict[str, Path]:
    """A teacher (harmony markers) and a student (<think> markers) with different tokenizers, at one
    fixed place per machine (see `built_once`)."""
    from tessy_core.paths import cache_dir

    from tests.tiny_models import built_once

    root = cache_dir() / "test-models" / "tiny-v1"
    return {
        "teacher": built_once(root / "teacher", role="teacher", seed=1),
        "student": built_once(root / "student", role="student", seed=2),
    }


@pytest.fixture(scope="session")
def ending_models() -> dict[str, Path]:
    """Random tiny models whose end markers are likely enough that most samples finish in a few
    dozen tokens: builds then have generated samples as well as failed ones.

    They live at one fixed place per machine: a model's path is part of the generation config, so
    of every sample id and seed, and a fixed path makes these builds' outcomes the same in every
    test session (a fresh temp path each session made them a new draw each time)."""
    import torch

    from tessy_core.paths import cache_dir

    from tests.tiny_models import built_once

    torch.set_num_threads(1)
    root = cache_dir() / "test-models" / "ending-v1"
    return {
        "teacher": built_once(root / "teacher", role="teacher", seed=1, end_probability=0.12),
        "student": built_once(root / "student", role="student", seed=2, end_probability=0.12),
    }


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """A temporary Prefect API (SQLite) for the flows of this session: one per session, whichever
    test folder asks first. Prefect's events worker is process-wide, so a second harness alive
    beside the first sends task-run events to the wrong server (the task runs then never appear)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_HOME, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect_home")
    with temporary_settings(updates={PREFECT_HOME: str(home), PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture
def scoped_registries():
    """What a test registers as a backend, predictor kind or dataset format is undone after it."""
    from tessy_core.backends import BACKENDS
    from tessy_core.predictors import PREDICTORS
    from tessy_core.publish.store import STORES

    with BACKENDS.scoped(), PREDICTORS.scoped(), STORES.scoped():
        yield
