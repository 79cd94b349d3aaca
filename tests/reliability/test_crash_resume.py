"""kill -9 of a build mid-generation, then a restart: every prompt published once or accounted for,
and a crash costs each running sample at most the steps since its last checkpoint."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tessy_core.builder.workspace import BuildWorkspace
from tessy_core.catalog import Catalog, build_samples, build_status, list_dataset_versions, select_prompts
from tessy_core.catalog.prompts import PromptFilter
from tessy_core.publish import scan

from tests.builder.helpers import seed_catalog
from tests.reliability.fake_openai import Call, FakeOpenAIServer, problem_number
from tests.reliability.helpers import (
    child_env,
    finish,
    http_config_dict,
    kill_group,
    outcome_rows,
    start_steps,
    tessy_build,
    write_config,
)

pytestmark = pytest.mark.slow

PROMPTS = 6
# 40 words of thinking = 20 span requests + the end of thinking + the answer: 22 requests a sample.
REQUESTS_PER_SAMPLE = 22


def kill_at(process_box: list, number: int):
    """A server hook that kill -9s the build process when request `number` arrives (before it is
    answered), i.e. in the middle of generation, with samples in flight."""

    def on_call(call: Call) -> None:
        if call.number == number and process_box:
            os.kill(process_box[0].pid, signal.SIGKILL)

    return on_call


def test_kill9_of_tessy_build_then_a_restart_publishes_every_prompt_once(tmp_path, ending_models, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    seed_catalog(tmp_path, PROMPTS)
    server = FakeOpenAIServer(wrong_answers=frozenset({1}), empty_answers=frozenset({2})).start()
    try:
        config = http_config_dict(tmp_path, ending_models, [server.base_url], runner={"max_workers": 1})
        config_file = write_config(tmp_path / "build.yaml", config)
        env = child_env(tmp_path, PREFECT_API_URL=str(PREFECT_API_URL.value()))

        box: list = []
        server.on_call = kill_at(box, 2 * REQUESTS_PER_SAMPLE + 11)  # shard 0 done, shard 1 running
        box.append(tessy_build(config_file, env))
        code, payload, err = finish(box[0])
        kill_group(box[0])
        assert code == -signal.SIGKILL, f"the build was not killed mid-generation (rc {code}):\n{err[-3000:]}"
        assert payload is None

        catalog = Catalog(config["catalog_path"])
        (build_dir,) = (tmp_path / "work").iterdir()
        workspace = BuildWorkspace(tmp_path / "work", build_dir.name)
        plan = workspace.load_plan()
        staged = sum(len(workspace.finished_records(s.shard_id)) for s in plan.shards)
        assert 0 < staged < PROMPTS, "the kill should land with some samples done and some not"
        assert list(workspace.checkpoints_dir.glob("*.json")), "running samples had checkpoints"
        assert build_status(catalog, build_dir.name) == "running"
        assert not list_dataset_versions(catalog, "tiny")
        assert not (tmp_path / "datasets" / "tiny").exists() or not list((tmp_path / "datasets" / "tiny").glob("v*"))

        server.on_call = None
        calls_before_restart = len(server.calls)
        code, payload, err = finish(tessy_build(config_file, env))
        assert code == 0, err[-3000:]
    finally:
        server.stop()

    # The restart continued the same build and did not redo finished samples.
    assert payload["ok"] and payload["status"] == "published" and payload["resumed"]
    assert payload["build_id"] == build_dir.name and payload["version"] == "tiny@v1"
    assert len(server.calls) - calls_before_restart < PROMPTS * REQUESTS_PER_SAMPLE
    # `tessy build --json` accounts for every sample, with reasons.
    counts = payload["counts"]
    assert counts == {"published": 4, "rejected": 1, "failed": 1, "pending": 0}
    assert payload["reasons"] == {
        "rejected": {"verification: wrong_answer": 1}, "failed": {"generation failed: empty_answer": 1},
    }
    # The published version: no duplicated and no missing prompt.
    rows = scan(str(tmp_path / "datasets"), payload["version"]).collect()
    assert rows.height == rows["prompt_id"].n_unique() == rows["sample_id"].n_unique() == 4
    catalog = Catalog(config["catalog_path"])
    samples = build_samples(catalog, payload["build_id"])
    all_prompts = {p.prompt_id for p in select_prompts(catalog, PromptFilter(sources=["unit"]))}
    assert sorted(s.prompt_id for s in samples) == sorted(all_prompts)
    assert set(rows["prompt_id"]) == {s.prompt_id for s in samples if s.outcome == "published"}
    assert all(s.reason for s in samples if s.outcome in ("rejected", "failed"))
    # ... and the catalog query (sql/queries/build_outcome_reasons.sql) shows the same accounting.
    by_outcome = {(r["outcome"], r["reason"]): r["samples"] for r in outcome_rows(config["catalog_path"], payload["build_id"])}
    assert by_outcome == {
        ("published", None): 4,
        ("rejected", "verification: wrong_answer"): 1,
        ("failed", "generation failed: empty_answer: the final answer is empty"): 1,
    }
    assert len(list_dataset_versions(catalog, "tiny")) == 1
    assert build_status(catalog, payload["build_id"]) == "succeeded"


def run_steps(config):
    from tessy_core.builder import pipeline

    prepared = pipeline.prepare_build(config)
    shards = [pipeline.generate_shard(config, prepared.build_id, s.shard_id) for s in prepared.plan.shards]
    return pipeline.finish_build(config, prepared, shards)


def _requests_by_problem(calls: list[Call]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for call in calls:
        counts[call.problem] = counts.get(call.problem, 0) + 1
    return counts


def test_a_crash_costs_at_most_the_steps_since_the_last_checkpoint(tmp_path, ending_models):
    """Deterministic models, so a crashed-and-resumed build must equal an uninterrupted one text
    for text, and the requests the crash wasted are counted exactly. checkpoint_every=1000 stands
    for checkpointing off: then a crash costs every running sample its whole trace so far."""
    base_records, base_calls, _ = _build(tmp_path / "uninterrupted", ending_models, checkpoint_every=4, kill_at_request=None)
    assert len(base_calls) == 4 * SAMPLE_REQUESTS
    for checkpoint_every in (4, 1000):
        records, calls, before_kill = _build(
            tmp_path / f"crashed-{checkpoint_every}", ending_models, checkpoint_every, kill_at_request=45
        )
        assert records.keys() == base_records.keys()
        for prompt_id, record in records.items():
            assert record["status"] == "ok" and record["thinking"] == base_records[prompt_id]["thinking"]
            assert record["usage"] == base_records[prompt_id]["usage"], "usage counts the requests kept"
        kept = {problem_number(r["problem"]): sum(u["requests"] for u in r["usage"].values()) for r in records.values()}
        served = _requests_by_problem(calls)
        wasted = {problem: served[problem] - kept[problem] for problem in kept}
        touched = _requests_by_problem(before_kill)
        print(f"checkpoint_every={checkpoint_every}: requests before the kill {touched}, wasted {wasted}")
        assert len(touched) == 2 and all(n < SAMPLE_REQUESTS for n in touched.values()), "two samples were running"
        if checkpoint_every == 4:
            # Each running sample lost at most the steps since its last checkpoint (the request in
            # flight included); the others lost nothing.
            assert all(0 <= lost <= checkpoint_every for lost in wasted.values()), wasted
            assert sum(wasted.values()) > 0
        else:
            assert wasted == {problem: touched.get(problem, 0) for problem in kept}


SAMPLE_REQUESTS = 32  # 60 words of thinking: 30 span requests, the end of thinking, the answer


def _build(root: Path, models, checkpoint_every: int, kill_at_request: int | None):
    """One build of 4 prompts (one shard, 2 samples at a time), optionally kill -9'd at a request
    and then run again; returns its staged records by prompt, the server's calls, and the calls
    before the kill."""
    from tessy_core.builder.config import BuildConfig

    root.mkdir()
    seed_catalog(root, 4)
    server = FakeOpenAIServer(thinking_words=60).start()
    try:
        data = http_config_dict(
            root, models, [server.base_url], shard_size=4, verification={"enabled": False},
            generation={"engine": {"concurrency": 2, "checkpoint_every": checkpoint_every}},
        )
        before_kill: list[Call] = []
        if kill_at_request is not None:
            box: list = []
            server.on_call = kill_at(box, kill_at_request)
            box.append(start_steps(write_config(root / "build.yaml", data), child_env(root)))
            code, _, err = finish(box[0])
            kill_group(box[0])
            assert code == -signal.SIGKILL, err[-3000:]
            server.on_call = None
            before_kill = list(server.calls)
        result = run_steps(BuildConfig.model_validate(data))
        assert result.counts["pending"] == 0
    finally:
        server.stop()
    (build_dir,) = (root / "work").iterdir()
    workspace = BuildWorkspace(root / "work", build_dir.name)
    records = {r["prompt_id"]: r for r in workspace.iter_records(workspace.load_plan())}
    return records, list(server.calls), before_kill
