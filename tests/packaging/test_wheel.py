"""The package installs anywhere: a wheel in a fresh virtualenv, outside the checkout, finds its SQL.

The catalog's queries live in the repository's top-level `sql/`; the wheel must carry them (an
editable install hides a wheel that does not, since the checkout is then beside the package).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        pytest.fail("uv not found: `make test` installs it (scripts/setup-env.sh)")
    return uv


def _torch_source() -> list[str]:
    """The same local CPU torch wheel folder setup-env.sh uses, when this machine has one."""
    constraints = REPO / ".venv" / "constraints.txt"
    links = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True, text=True
    ).stdout.strip()
    if constraints.exists() and links and Path(links).is_dir():
        return ["--find-links", links, "-c", str(constraints)]
    return []


@pytest.mark.slow
def test_a_wheel_in_a_fresh_virtualenv_creates_a_catalog_and_ingests_from_another_directory(tmp_path):
    uv = _uv()
    wheels = tmp_path / "wheels"
    subprocess.run([uv, "build", "--wheel", "-q", "-o", str(wheels), str(REPO)], check=True, timeout=600)
    (wheel,) = wheels.glob("tessy-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", "3.11", str(venv)], check=True, timeout=300)
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *_torch_source(), str(wheel)],
        check=True, timeout=1200,
    )
    # Nothing of the checkout is importable from there: the installed package is what runs.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import tessy_core; print(tessy_core.__file__)"],
        cwd=elsewhere, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where

    prompts = elsewhere / "prompts.jsonl"
    prompts.write_text("".join(
        json.dumps({"statement": f"Read n and print n + {i}.", "tests": [{"kind": "stdio", "input": "1\n", "output": f"{1 + i}\n"}]}) + "\n"
        for i in range(5)
    ))
    tessy = str(venv / "bin" / "tessy")
    ingest = subprocess.run(
        [tessy, "catalog", "ingest", "prompts.jsonl", "--source", "wheel", "--catalog", "catalog.duckdb", "--json"],
        cwd=elsewhere, capture_output=True, text=True, timeout=300,
    )
    assert ingest.returncode == 0, ingest.stdout + ingest.stderr
    assert json.loads(ingest.stdout)["added"] == 5
    stats = subprocess.run(
        [tessy, "catalog", "stats", "--catalog", "catalog.duckdb", "--json"],
        cwd=elsewhere, capture_output=True, text=True, timeout=300,
    )
    assert stats.returncode == 0, stats.stdout + stats.stderr
    assert json.loads(stats.stdout)["prompts"] == 5
