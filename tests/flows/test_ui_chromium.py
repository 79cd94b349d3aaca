"""Dashboards a data team runs on, proven against a real `prefect server` and its UI in headless Chromium.

Two builds of one dataset: a clean one (publishes v1), then a bad one (answers capped at one token,
so almost every sample fails). What the UI shows is checked through Prefect's API (state names and
messages, run names and tags, artifacts on the flow run, the version link's scheme, tessy's log
lines) and in the rendered pages; the screenshots are kept in `$TESSY_TEST_ARTIFACTS/prefect-ui`
(default `var/test-artifacts/prefect-ui`) for people to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.builder.helpers import LENIENT_VALIDATION, build_config_dict, seed_catalog
from tests.flows.browser import CHROMIUM, Browser
from tests.flows.prefect_server import PrefectServer, prefect_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DATASET = "ui-demo"
SHOTS = Path(os.environ.get("TESSY_TEST_ARTIFACTS", REPO / "var" / "test-artifacts")) / "prefect-ui"


def _build(server: PrefectServer, config_path: Path) -> tuple[int, dict]:
    tessy = str(Path(sys.executable).parent / "tessy")
    done = subprocess.run([tessy, "build", "--config", str(config_path), "--json"], env=server.env(),
                          capture_output=True, text=True, timeout=900)
    assert done.stdout.strip(), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


def _config(tmp_path: Path, models: dict[str, Path], name: str, **overrides) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(build_config_dict(tmp_path, models, dataset=DATASET, **overrides)))
    return path


def _logs(server: PrefectServer, flow_run_id: str) -> list[dict]:
    return server.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200})


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")
def test_a_bad_build_looks_bad_in_the_prefect_ui(tmp_path, ending_models):
    home = tmp_path / "prefect-home"
    home.mkdir()
    seed_catalog(tmp_path, 6)
    clean = _config(tmp_path, ending_models, "clean",
                    validation={**LENIENT_VALIDATION, "max_failed_share": 0.5})
    generation = build_config_dict(tmp_path, ending_models)["generation"]
    bad = _config(tmp_path, ending_models, "bad", shard_size=3, validation={**LENIENT_VALIDATION, "max_failed_share": 0.25},
                  generation={**generation, "engine": {**generation["engine"], "max_answer_tokens": 1,
                                                       "max_attempts": 1}})
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)

    with prefect_server(home) as server:
        code, first = _build(server, clean)
        assert code == 0 and first["status"] == "published" and first["version"] == f"{DATASET}@v1", first
        code, second = _build(server, bad)
        assert code == 2 and second["status"] == "blocked", second  # the CLI says so too
        assert second["counts"]["failed"] / sum(second["counts"].values()) > 0.25

        good_run, bad_run = sorted(server.post("/flow_runs/filter", {}), key=lambda r: r["start_time"])

        # The runs list: named for what they built, the bad one not plainly successful.
        assert good_run["name"] == f"{DATASET}@v1" and good_run["state_type"] == "COMPLETED"
        assert bad_run["name"] == f"{DATASET}@v2 (blocked)"
        assert bad_run["state_type"] == "FAILED" and bad_run["state_name"] == "Blocked"
        message = bad_run["state"]["message"]
        failed = second["counts"]["failed"]
        assert f"{failed} failed (" in message and "failed_share" in message and "<= 25%" in message, message
        assert {f"dataset:{DATASET}", "version:none", "teacher:tiny-teacher", "student:tiny-student",
                "mode:tessy", "status:blocked"} <= set(bad_run["tags"])
        assert any(re.fullmatch(r"config:[0-9a-f]{12}", t) for t in bad_run["tags"])
        assert {"version:v1", "status:published"} <= set(good_run["tags"])

        # Shards where most samples failed say so in their state and message.
        tasks = server.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [bad_run["id"]]}}})
        shards = [t for t in tasks if t["name"].startswith("generate-shard-")]
        assert len(shards) == 2
        for shard in shards:
            assert shard["state_type"] == "COMPLETED" and shard["state_name"] == "Completed with failures", shard
            assert re.search(r"3 samples: \d publishable, \d rejected, \d failed \(generation failed: ",
                             shard["state"]["message"]), shard["state"]["message"]

        # Artifacts hang off the flow run, name the dataset, and the blocked build has no version link.
        artifacts = server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [bad_run["id"]]}}})
        by_key = {a["key"]: a for a in artifacts}
        assert all(a["task_run_id"] is None for a in artifacts)
        assert {f"build-{DATASET}-{k}" for k in ("report", "validation", "outcomes", "trend", "trend-chart")} <= set(by_key)
        assert f"build-{DATASET}-version" not in by_key
        assert all(DATASET in a["description"] for a in artifacts)
        report = by_key[f"build-{DATASET}-report"]["data"]
        assert report.startswith(f"# {DATASET}: BLOCKED") and "| failed_share | **FAILED** |" in report
        assert "First sample ids per reason" in report and "rejected.parquet" in report
        trend = json.loads(by_key[f"build-{DATASET}-trend"]["data"])
        assert [row["version"] for row in trend] == ["v1", "this build (BLOCKED)"]
        outcomes = json.loads(by_key[f"build-{DATASET}-outcomes"]["data"])
        failed_row = next(row for row in outcomes if row["outcome"] == "failed")
        assert failed_row["samples"] == failed and failed_row["first sample ids"]

        # Every link opens: the clean build's version link goes to its card's page in the UI (http),
        # and the card says where the version is as a file:// URI.
        good_artifacts = {a["key"]: a for a in server.post(
            "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [good_run["id"]]}}})}
        link = re.search(r"\]\((\S+)\)", good_artifacts[f"build-{DATASET}-version"]["data"]).group(1)
        assert urlparse(link).scheme == "http" and link.startswith(server.url), link
        card = good_artifacts[f"build-{DATASET}-card"]
        assert link.endswith(f"/artifacts/artifact/{card['id']}")
        assert re.search(r"`file:///\S+/ui-demo/v1`", card["data"]), card["data"][:500]

        # tessy's own progress is in the run and task logs.
        lines = [log["message"] for log in _logs(server, bad_run["id"])]
        assert any("samples to generate" in m and "models: teacher tiny-teacher" in m for m in lines), lines
        assert any("failed after 1 attempt(s): answer_token_cap" in m for m in lines), lines
        assert any(re.search(r"shard-0000\d finished in .* s: 3 done now", m) for m in lines), lines
        assert any("failed_share" in m and "BLOCKED" in m for m in lines), lines

        # What people see, in a real browser: the runs list, the bad run (logs, artifacts), a shard,
        # the report, the trend chart, and the page the clean version's link opens.
        with Browser(tmp_path / "chromium-profile", height=1000) as browser:
            text = browser.open(f"{server.url}/runs", until=[f"{DATASET}@v2 (blocked)", f"{DATASET}@v1"])
            assert "Blocked" in text and "status:blocked" in text
            browser.screenshot(SHOTS / "01-runs-list.png")
            browser.resize(1400, 1800)
            text = browser.open(f"{server.url}/runs/flow-run/{bad_run['id']}", until=["Blocked", "samples to generate"])
            assert "failed after 1 attempt(s)" in text
            browser.screenshot(SHOTS / "02-bad-flow-run-logs.png")
            browser.click("Artifacts")
            text = browser.wait_for([f"build-{DATASET}-report", f"build-{DATASET}-trend-chart"])
            browser.screenshot(SHOTS / "03-bad-flow-run-artifacts.png")
            text = browser.open(f"{server.url}/runs/task-run/{shards[0]['id']}", until="Completed with failures")
            browser.screenshot(SHOTS / "04-bad-shard-task.png")
            browser.resize(1400, 3400)
            report_id = by_key[f"build-{DATASET}-report"]["id"]
            text = browser.open(f"{server.url}/artifacts/artifact/{report_id}", until=[f"{DATASET}: BLOCKED", "failed_share"])
            assert "First sample ids per reason" in text and "style gate off" in text
            browser.screenshot(SHOTS / "05-bad-report.png")
            browser.resize(1400, 2200)
            chart_id = by_key[f"build-{DATASET}-trend-chart"]["id"]
            browser.open(f"{server.url}/artifacts/artifact/{chart_id}", until=["publish rate", "this build (BLOCKED)"])
            browser.screenshot(SHOTS / "06-trend-chart.png")
            # The link opens the card (the UI's SPA routes it), not Prefect's 404 page.
            browser.resize(1400, 2400)
            text = browser.open(link, until=f"{DATASET}@v1: dataset card")
            assert "file://" in text and "manifest.json" in text
            browser.screenshot(SHOTS / "07-clean-version-card.png")
            browser.resize(1400, 1800)
            browser.open(f"{server.url}/runs/flow-run/{good_run['id']}", until=f"{DATASET}@v1")
            browser.click("Artifacts")
            browser.wait_for(f"build-{DATASET}-card")
            browser.screenshot(SHOTS / "08-clean-flow-run-artifacts.png")
