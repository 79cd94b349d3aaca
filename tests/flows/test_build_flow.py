"""The `build_dataset` flow on a Prefect test server: tasks per shard, artifacts, failure and resume, CLI."""

from __future__ import annotations

import json

import pytest
import yaml

from tessy_core.builder.config import RunnerConfig
from tessy_core.builder.progress import listening
from tessy_core.builder.stages import VERSION_STAGES
from tessy_core.builder.workspace import BuildWorkspace
from tessy_core.catalog import Catalog, build_status

from tests.builder.helpers import build_config, build_config_dict, seed_catalog


class ShardBroke(RuntimeError):
    pass


def _artifacts(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def _flow_run(flow_run_id):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def _task_names(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(run.name for run in runs)


def _task_names_in_order(flow_run_id):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [run.name for run in sorted(runs, key=lambda run: run.expected_start_time)]


def test_flow_maps_shards_publishes_and_reports_artifacts(prefect_harness, tmp_path, ending_models):
    from flows.build import run_build

    seed_catalog(tmp_path, 5)
    config = build_config(tmp_path, ending_models)
    result_state = run_build(config, return_state=True)
    assert result_state.is_completed()
    result = result_state.result()
    assert result.status == "published" and result.version == "tiny@v1"
    assert result.counts["pending"] == 0 and sum(result.counts.values()) == 5

    flow_run_id = result_state.state_details.flow_run_id
    names = _task_names(flow_run_id)
    assert [n for n in names if n.startswith("generate-")] == ["generate-shard-00000", "generate-shard-00001", "generate-shard-00002"]
    # Each whole-version stage is a task of its own, in the declared order.
    stage_runs = [n.rsplit("-", 1)[0] for n in _task_names_in_order(flow_run_id) if not n.startswith(("generate-", "prepare-"))]
    assert stage_runs == [stage.name for stage in VERSION_STAGES]
    artifacts = {a.key: a for a in _artifacts(flow_run_id)}
    assert set(artifacts) == {
        f"build-tiny-{kind}" for kind in (
            "card", "report", "version", "validation", "outcomes", "quality", "model-usage", "trend", "trend-chart")
    }
    # On the flow run itself, not on a task, and each says which dataset and version it is about.
    assert all(a.task_run_id is None for a in artifacts.values())
    assert all("tiny@v1" in a.description for k, a in artifacts.items() if not k.startswith("build-tiny-trend"))
    outcomes = json.loads(artifacts["build-tiny-outcomes"].data)
    assert {row["outcome"]: row["samples"] for row in outcomes} == result.counts
    usage = json.loads(artifacts["build-tiny-model-usage"].data)
    assert {row["model"] for row in usage} == {"teacher", "student"}
    # The version link opens the card's page in the UI; the card says where the version is as a file:// URI.
    card = artifacts["build-tiny-card"]
    assert f"/artifacts/artifact/{card.id}" in artifacts["build-tiny-version"].data
    assert f"`file://{result.uri}`" in card.data and "manifest.json" in card.data
    report = artifacts["build-tiny-report"].data
    assert report.startswith("# tiny@v1: published") and "| headline | value |" in report
    assert "## Samples by outcome" in report and "█" in report
    trend = json.loads(artifacts["build-tiny-trend"].data)
    assert [row["version"] for row in trend] == ["v1 (this build)"]

    run = _flow_run(flow_run_id)
    assert run.name == "tiny@v1" and result_state.message.startswith("tiny@v1: published;")
    assert {"dataset:tiny", "version:v1", "teacher:tiny-teacher", "student:tiny-student", "mode:tessy",
            "status:published"} <= set(run.tags)


def test_a_failed_flow_marks_the_build_failed_and_a_rerun_continues_it(prefect_harness, tmp_path, ending_models):
    from flows.build import run_build

    seed_catalog(tmp_path, 5)
    config = build_config(tmp_path, ending_models, runner={"kind": "threads", "max_workers": 1, "shard_retries": 0})

    def break_second_shard(event):
        if event.kind == "sample" and event.data["shard_id"] == "shard-00001":
            raise ShardBroke("the machine went away")

    with listening(break_second_shard), pytest.raises(ShardBroke):
        run_build(config)
    catalog = Catalog(config.catalog_path)
    (build_id,) = {p.name for p in (tmp_path / "work").iterdir()}
    assert build_status(catalog, build_id) == "failed"
    events = [json.loads(line)["eventType"] for line in (tmp_path / "lineage" / "events.jsonl").read_text().splitlines()]
    assert events == ["START", "FAIL"]

    workspace = BuildWorkspace(tmp_path / "work", build_id)
    staged = {sid for shard in workspace.load_plan().shards for sid in workspace.finished_records(shard.shard_id)}
    assert workspace.shard_done("shard-00000") is not None and 2 < len(staged) < 5

    regenerated = []
    with listening(lambda e: regenerated.append(e.data["sample_id"]) if e.kind == "sample" else None):
        result = run_build(config)
    assert result.build_id == build_id and result.resumed and result.status == "published"
    # Only the samples no run had finished were generated, each once.
    assert len(regenerated) == len(set(regenerated)) == 5 - len(staged)
    assert staged.isdisjoint(regenerated)
    assert result.shards["samples_generated_now"] == 5 - len(staged)
    assert result.shards["samples_kept_from_earlier_runs"] == len(staged)
    assert sum(result.counts.values()) == 5 and result.counts["pending"] == 0
    assert build_status(catalog, build_id) == "succeeded"


def test_a_shard_that_breaks_is_retried_and_keeps_what_it_staged(prefect_harness, tmp_path, ending_models):
    from flows.build import run_build

    seed_catalog(tmp_path, 5)
    runner = {"kind": "threads", "max_workers": 1, "shard_retries": 1, "shard_retry_delay_s": 0}
    config = build_config(tmp_path, ending_models, runner=runner)
    generated, broke = [], []

    def break_second_shard_once(event):
        if event.kind == "sample":
            generated.append(event.data["sample_id"])
            if event.data["shard_id"] == "shard-00001" and not broke:
                broke.append(event.data["sample_id"])
                raise ShardBroke("the machine went away")

    with listening(break_second_shard_once):
        result_state = run_build(config, return_state=True)
    assert result_state.is_completed()
    result = result_state.result()
    assert result.status == "published" and sum(result.counts.values()) == 5 and result.counts["pending"] == 0
    # The retry generated only what the broken try had not staged: every sample once.
    assert len(generated) == len(set(generated)) == 5
    names = _task_names(result_state.state_details.flow_run_id)
    assert [n for n in names if n.startswith("generate-")] == ["generate-shard-00000", "generate-shard-00001", "generate-shard-00002"]


def test_cli_build_prints_counts_and_version_as_json(prefect_harness, tmp_path, ending_models):
    from typer.testing import CliRunner

    from tessy_core.cli import app

    seed_catalog(tmp_path, 3)
    config_file = tmp_path / "build.yaml"
    config_file.write_text(yaml.safe_dump(build_config_dict(tmp_path, ending_models)))
    outcome = CliRunner().invoke(app, ["build", "--config", str(config_file), "--json"])
    assert outcome.exit_code == 0, outcome.output
    payload = json.loads(outcome.stdout)
    assert payload["ok"] and payload["version"] == "tiny@v1" and payload["status"] == "published"
    assert sum(payload["counts"].values()) == 3 and payload["counts"]["pending"] == 0

    again = json.loads(CliRunner().invoke(app, ["build", "--config", str(config_file), "--json"]).stdout)
    assert again["already_published"] and again["version"] == "tiny@v1"


def test_cli_build_rejects_a_bad_config_clearly(tmp_path):
    from typer.testing import CliRunner

    from tessy_core.cli import app

    config_file = tmp_path / "build.yaml"
    config_file.write_text(yaml.safe_dump({"dataset": "x", "shard_size": 0}))
    outcome = CliRunner().invoke(app, ["build", "--config", str(config_file), "--json"])
    assert outcome.exit_code == 1
    payload = json.loads(outcome.stdout)
    assert not payload["ok"] and "shard_size" in payload["error"] and "generation" in payload["error"]


def test_ray_runner_is_a_clean_seam():
    from flows.runners import RunnerUnavailable, task_runner_for
    from prefect.task_runners import ThreadPoolTaskRunner

    threads = task_runner_for(RunnerConfig(kind="threads", max_workers=3))
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    try:
        import prefect_ray  # noqa: F401
    except ImportError:
        with pytest.raises(RunnerUnavailable, match="prefect-ray"):
            task_runner_for(RunnerConfig(kind="ray"))
    else:
        assert type(task_runner_for(RunnerConfig(kind="ray"))).__name__ == "RayTaskRunner"
