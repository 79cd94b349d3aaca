"""Build configs against the fake OpenAI-compatible server, and build processes to kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tessy_core.builder.config import BuildConfig
from tessy_core.catalog import Catalog
from tessy_core.catalog.connection import fetch_dicts
from tessy_core.catalog.sql import query

from tests.builder.helpers import LENIENT_VALIDATION, build_config_dict

REPO = Path(__file__).resolve().parents[2]
VERIFIED_ONLY = {**LENIENT_VALIDATION, "publish": "verified_only"}


def http_config_dict(root: Path, models: dict[str, Path], endpoints: list[str], **overrides: Any) -> dict[str, Any]:
    """A build of the tiny dataset whose models are served over HTTP at `endpoints`."""
    serving = {"backend": "http", "endpoints": endpoints, "send_seed": False, "request_timeout_s": 5.0,
               "max_retries": 2}
    generation = {
        "teacher": {"name": "tiny-teacher", "path": str(models["teacher"]), "family": "harmony", "span_tokens": 6,
                    **serving},
        "student": {"name": "tiny-student", "path": str(models["student"]), "family": "qwen3", "span_tokens": 3,
                    **serving},
        "teacher_predictor": {"kind": "lexicon", "phrases": ["Thus", "Compute"]},
        "student_predictor": {"kind": "lexicon", "phrases": ["Okay", "Hmm"]},
        "engine": {"max_thinking_tokens": 1200, "max_answer_tokens": 64, "max_attempts": 2, "concurrency": 2,
                   "checkpoint_every": 4, "span_requests": "stream"},
    }
    for key, value in overrides.pop("generation", {}).items():
        generation[key] = {**generation[key], **value} if isinstance(value, dict) else value
    data = build_config_dict(root, models, **{"validation": VERIFIED_ONLY, **overrides})
    data["generation"] = generation
    return data


def http_config(root: Path, models: dict[str, Path], endpoints: list[str], **overrides: Any) -> BuildConfig:
    return BuildConfig.model_validate(http_config_dict(root, models, endpoints, **overrides))


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def child_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def start_steps(config_file: Path, env: dict[str, str]) -> subprocess.Popen:
    """The build's steps without Prefect, in a process of its own (see run_build_steps.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.run_build_steps", str(config_file)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def tessy_build(config_file: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("tessy")), "build", "--config", str(config_file), "--json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, dict[str, Any] | None, str]:
    """Wait for a build process; its JSON line (if it printed one) and stderr."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        out, err = process.communicate()
        raise AssertionError(f"build process hung; stderr tail:\n{err[-3000:]}") from None
    start = out.find("{")
    return process.returncode, (json.loads(out[start:]) if start >= 0 else None), err


def kill_group(process: subprocess.Popen) -> None:
    """Remove what is left of a killed build's process group (children it had started)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def outcome_rows(catalog_path: str | Path, build_id: str) -> list[dict[str, Any]]:
    """sql/queries/build_outcome_reasons.sql: samples per outcome and reason of one build."""
    return Catalog(catalog_path).read(
        lambda connection: fetch_dicts(connection.execute(query("build_outcome_reasons"), {"build_id": build_id}))
    )
