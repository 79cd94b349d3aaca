"""Inference faults against a real HTTP server (the fake OpenAI-compatible one): 500s, hangs past the
timeout, empty completions, malformed JSON, dropped connections, a replica that never comes back,
a server killed and restarted mid-build. The build finishes, or fails cleanly with reasons, and
nothing half-written is published."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tessy_core.builder.config import BuildConfig
from tessy_core.catalog import Catalog, build_samples, list_dataset_versions
from tessy_core.publish import scan

from tests.builder.helpers import LENIENT_VALIDATION, seed_catalog
from tests.reliability.fake_openai import Call, FakeOpenAIServer
from tests.reliability.helpers import http_config_dict
from tests.reliability.test_crash_resume import run_steps

pytestmark = pytest.mark.slow

PROMPTS = 4


def _config(root: Path, models, endpoints: list[str], *, outage_wait_s: float = 60.0) -> BuildConfig:
    seed_catalog(root, PROMPTS)
    serving = {"request_timeout_s": 1.0, "max_retries": 4, "outage_wait_s": outage_wait_s}
    data = http_config_dict(
        root, models, endpoints, shard_size=PROMPTS, verification={"enabled": False}, validation=LENIENT_VALIDATION,
        generation={"engine": {"concurrency": 2, "checkpoint_every": 4}, "teacher": serving, "student": serving},
    )
    return BuildConfig.model_validate(data)


def _assert_published_rows_are_whole(config: BuildConfig, result) -> None:
    """Every published row is a finished sample; every other sample says why it is not there."""
    samples = build_samples(Catalog(config.catalog_path), result.build_id)
    assert len(samples) == PROMPTS and all(s.outcome != "pending" for s in samples)
    assert all(s.reason for s in samples if s.outcome in ("failed", "rejected"))
    if result.version is None:
        assert not list_dataset_versions(Catalog(config.catalog_path), config.dataset)
        return
    rows = scan(config.output.base_uri, result.version).collect()
    assert set(rows["sample_id"]) == {s.sample_id for s in samples if s.outcome == "published"}
    for row in rows.iter_rows(named=True):
        assert row["answer"].startswith("```python") and row["messages"][1]["content"].endswith(row["answer"])
    assert not list((Path(config.output.base_uri) / config.dataset / ".staging").glob("*"))


MIX = ("500", "empty", "malformed", "no_choices", "disconnect", "hang")


def test_transient_faults_are_retried_and_every_sample_is_published(tmp_path, ending_models):
    # Every 3rd request misbehaves, cycling through every kind of fault; span requests are
    # streamed and answers are plain requests, so both paths meet each fault.
    def fault(call: Call) -> str | None:
        return MIX[(call.number // 3) % len(MIX)] if call.number % 3 == 0 else None

    server = FakeOpenAIServer(fault=fault, hang_s=2.5).start()
    try:
        config = _config(tmp_path, ending_models, [server.base_url])
        result = run_steps(config)
    finally:
        server.stop()
    assert set(server.faults_served) == set(MIX) and min(server.faults_served.values()) >= 3, server.faults_served
    assert result.status == "published", result.message
    assert result.counts == {"published": PROMPTS, "rejected": 0, "failed": 0, "pending": 0}
    _assert_published_rows_are_whole(config, result)


def test_a_replica_that_never_comes_back_is_routed_around(tmp_path, ending_models):
    healthy = FakeOpenAIServer().start()
    dead = FakeOpenAIServer()  # never started: its port refuses connections
    try:
        config = _config(tmp_path, ending_models, [dead.base_url, healthy.base_url])
        result = run_steps(config)
    finally:
        healthy.stop()
    assert result.counts == {"published": PROMPTS, "rejected": 0, "failed": 0, "pending": 0}
    _assert_published_rows_are_whole(config, result)


def test_the_only_server_dying_mid_build_fails_samples_with_reasons(tmp_path, ending_models):
    server = FakeOpenAIServer().start()

    def die_at(call: Call) -> None:
        if call.number == 50:  # samples 1-2 finished (22 requests each), 3-4 running
            threading.Thread(target=server.stop).start()

    server.on_call = die_at
    config = _config(tmp_path, ending_models, [server.base_url], outage_wait_s=2.0)
    result = run_steps(config)
    assert result.counts["pending"] == 0 and result.counts["failed"] >= 1
    assert set(result.reasons["failed"]) == {"generation failed: backend_error"}
    samples = build_samples(Catalog(config.catalog_path), result.build_id)
    failed = [s for s in samples if s.outcome == "failed"]
    assert all("every replica stayed down for 2 s" in s.reason for s in failed)
    _assert_published_rows_are_whole(config, result)


def test_a_server_killed_and_restarted_mid_build_loses_no_sample(tmp_path, ending_models):
    server = FakeOpenAIServer().start()
    restarted = threading.Event()

    def bounce_at(call: Call) -> None:
        if call.number == 30 and not restarted.is_set():
            restarted.set()

            def bounce() -> None:
                server.stop()
                threading.Timer(1.0, server.start).start()

            threading.Thread(target=bounce).start()

    server.on_call = bounce_at
    try:
        config = _config(tmp_path, ending_models, [server.base_url])
        result = run_steps(config)
    finally:
        server.stop()
    assert restarted.is_set()
    assert result.counts == {"published": PROMPTS, "rejected": 0, "failed": 0, "pending": 0}
    _assert_published_rows_are_whole(config, result)
