"""infra/prefect/prefect.yaml against a real `prefect server`: the deployment registers with its
cron schedule, and a run of it (picked up by a process worker) builds a version from unused prompts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tessy_core.catalog import Catalog, list_dataset_versions
from tests.builder.helpers import build_config_dict, seed_catalog
from tests.flows.prefect_server import PrefectServer, prefect_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PREFECT_FILE = REPO / "infra" / "prefect" / "prefect.yaml"
BIN = Path(sys.executable).parent


def _prefect(server: PrefectServer, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "prefect"), *args], env=server.env(), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_prefect_yaml_deployment_registers_its_schedule_and_a_run_completes(tmp_path, ending_models):
    spec = yaml.safe_load(PREFECT_FILE.read_text())
    (deployment_spec,) = spec["deployments"]
    pool = deployment_spec["work_pool"]["name"]
    home = tmp_path / "prefect-home"
    home.mkdir()
    catalog_path = seed_catalog(tmp_path, 3)
    config_path = tmp_path / "build.yaml"
    config_path.write_text(yaml.safe_dump(build_config_dict(tmp_path, ending_models, dataset="nightly-ds")))

    with prefect_server(home) as server:
        _prefect(server, "work-pool", "create", pool, "--type", "process")
        _prefect(server, "--no-prompt", "deploy", "--prefect-file", str(PREFECT_FILE), "--all")

        (deployment,) = server.post("/deployments/filter", {"deployments": {"name": {"any_": [deployment_spec["name"]]}}})
        assert deployment["entrypoint"] == deployment_spec["entrypoint"]
        assert deployment["parameters"]["new_prompts_only"] is True
        (schedule,) = deployment["schedules"]
        assert schedule["active"] and schedule["schedule"]["cron"] == deployment_spec["schedules"][0]["cron"]
        assert schedule["schedule"]["timezone"] == "UTC"

        run = server.post(
            f"/deployments/{deployment['id']}/create_flow_run",
            {"parameters": {"config_path": str(config_path), "new_prompts_only": True}},
        )
        _prefect(server, "worker", "start", "--pool", pool, "--run-once", timeout=900)
        deadline = time.monotonic() + 120
        while (state := server.get(f"/flow_runs/{run['id']}")["state_type"]) not in ("COMPLETED", "FAILED", "CRASHED"):
            assert time.monotonic() < deadline, f"flow run still {state}"
            time.sleep(1)
        assert state == "COMPLETED", server.get(f"/flow_runs/{run['id']}")["state"]

    (version,) = list_dataset_versions(Catalog(catalog_path), "nightly-ds")
    assert version.version == "v1" and Path(version.uri, "manifest.json").is_file()
