"""Third-party progress bars stay off unless asked for (`tessy --verbose`)."""

from __future__ import annotations

import os
import subprocess
import sys

LOAD = """
import sys
from tessy_core.cli import _root
_root(verbose={verbose})
from tessy_core.model_loading import load_pretrained
load_pretrained("AutoModelForCausalLM", sys.argv[1])
"""


def _stderr_of_a_load(model_dir, verbose: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    done = subprocess.run(
        [sys.executable, "-c", LOAD.format(verbose=verbose), str(model_dir)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_model_loading_shows_no_library_progress_bar_by_default(tiny_models):
    assert "Loading weights" not in _stderr_of_a_load(tiny_models["student"], verbose=False)


def test_verbose_brings_the_library_bars_back(tiny_models):
    assert "Loading weights" in _stderr_of_a_load(tiny_models["student"], verbose=True)
