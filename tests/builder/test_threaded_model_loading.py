"""Shards load their models from a thread pool: the first loads must not race inside transformers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.slow  # a fresh interpreter importing torch and transformers: ~20 s here
def test_two_threads_load_models_at_once_in_a_fresh_process(tiny_models):
    # A fresh interpreter, so transformers' names are resolved for the first time by the threads.
    script = textwrap.dedent(
        f"""
        import threading
        from tessy_core.backends.transformers_local import TransformersBackend
        errors = []
        def load(path):
            try:
                TransformersBackend(path)
            except Exception as error:
                errors.append(repr(error))
        paths = [{str(tiny_models["teacher"])!r}, {str(tiny_models["student"])!r}]
        threads = [threading.Thread(target=load, args=(p,)) for p in paths]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print("ERRORS", errors)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ERRORS []" in done.stdout, done.stdout + done.stderr[-2000:]
