"""A build against a real `prefect server`, and its flow run and artifacts rendered by the UI in
headless Chromium (Debian's `chromium`). Screenshots stay in the test's tmp dir."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.builder.helpers import build_config_dict, seed_catalog
from tests.flows.prefect_server import prefect_server

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACT_KINDS = ("outcomes", "model-usage", "quality", "version", "report")


def _chromium(url: str, *, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and a screenshot when asked)."""
    base = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--window-size=1400,1800", "--virtual-time-budget=15000"]
    if screenshot is not None:
        subprocess.run([*base, f"--screenshot={screenshot}", url], capture_output=True, timeout=180, check=True)
        assert screenshot.stat().st_size > 10_000, f"{screenshot} looks empty"
    done = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True)
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")
def test_flow_run_and_its_artifacts_render_in_the_prefect_ui(tmp_path, ending_models):
    home = tmp_path / "prefect-home"
    home.mkdir()
    seed_catalog(tmp_path, 4)
    config_path = tmp_path / "build.yaml"
    config_path.write_text(yaml.safe_dump(build_config_dict(tmp_path, ending_models, dataset="ui-demo")))
    shots = tmp_path / "screenshots"
    shots.mkdir()

    with prefect_server(home) as server:
        tessy = str(Path(sys.executable).parent / "tessy")
        done = subprocess.run([tessy, "build", "--config", str(config_path), "--json"], env=server.env(),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        result = json.loads(done.stdout)
        assert result["status"] == "published" and result["version"] == "ui-demo@v1"

        (run,) = server.post("/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 1})
        assert run["state_type"] == "COMPLETED"
        artifacts = server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
        by_key = {artifact["key"]: artifact for artifact in artifacts}
        assert {f"build-ui-demo-{kind}" for kind in ARTIFACT_KINDS} <= set(by_key)

        run_page = _chromium(f"{server.url}/runs/flow-run/{run['id']}", screenshot=shots / "flow-run.png")
        assert run["name"] in run_page and "Completed" in run_page

        report = by_key["build-ui-demo-report"]
        report_page = _chromium(f"{server.url}/artifacts/artifact/{report['id']}", screenshot=shots / "report.png")
        assert "Samples by outcome" in report_page and "ui-demo@v1" in report_page

        outcomes = by_key["build-ui-demo-outcomes"]
        outcomes_page = _chromium(f"{server.url}/artifacts/artifact/{outcomes['id']}", screenshot=shots / "outcomes.png")
        assert "published" in outcomes_page and str(result["counts"]["published"]) in outcomes_page
