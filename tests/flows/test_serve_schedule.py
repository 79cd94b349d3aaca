"""`python -m flows.serve` against a real `prefect server`: the deployment registers with its cron
schedule, and each run of it builds the next version of the dataset from prompts not used yet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tessy_core.publish import scan
from tests.builder.helpers import build_config_dict, seed_catalog
from tests.flows.prefect_server import PrefectServer, prefect_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def test_served_deployment_builds_the_next_versions_from_unused_prompts(tmp_path, ending_models):
    home = tmp_path / "prefect-home"
    home.mkdir()
    seed_catalog(tmp_path, 4)
    config_path = tmp_path / "build.yaml"
    config_path.write_text(yaml.safe_dump(build_config_dict(
        tmp_path, ending_models, dataset="served", selection={"sources": ["unit"], "limit": 2},
    )))
    log_path = tmp_path / "serve.log"

    with prefect_server(home) as server, log_path.open("w") as log:
        env = {**server.env(), "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
        serve = subprocess.Popen(
            [sys.executable, "-m", "flows.serve", "--config", str(config_path), "--cron", "30 2 * * *",
             "--name", "served"],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            deployment = _wait(lambda: _deployment(server, "served"), 240, serve, log_path)
            (schedule,) = deployment["schedules"]
            assert schedule["active"] and schedule["schedule"]["cron"] == "30 2 * * *"
            assert deployment["parameters"] == {"config_path": str(config_path), "new_prompts_only": True}

            for _ in range(2):  # what two scheduled firings do, triggered now instead of at 02:30
                run = server.post(f"/deployments/{deployment['id']}/create_flow_run", {})
                final = _wait(lambda: _final(server, run["id"]), 600, serve, log_path)
                assert final["state_type"] == "COMPLETED", final["state"]
        finally:
            if serve.poll() is None:
                os.killpg(serve.pid, signal.SIGTERM)
                serve.wait(timeout=60)

    base = str(tmp_path / "datasets")
    first = set(scan(base, "served@v1").collect()["prompt_id"])
    second = set(scan(base, "served@v2").collect()["prompt_id"])
    assert first and second and first.isdisjoint(second)


def _deployment(server: PrefectServer, name: str) -> dict | None:
    found = server.post("/deployments/filter", {"deployments": {"name": {"any_": [name]}}})
    return found[0] if found else None


def _final(server: PrefectServer, run_id: str) -> dict | None:
    run = server.get(f"/flow_runs/{run_id}")
    return run if run["state_type"] in FINAL else None


def _wait(probe, timeout_s: float, process: subprocess.Popen, log_path: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        if process.poll() is not None:
            pytest.fail(f"the serve process exited ({process.returncode}): {log_path.read_text()[-3000:]}")
        time.sleep(2)
    pytest.fail(f"timed out after {timeout_s:.0f}s; serve log: {log_path.read_text()[-3000:]}")
