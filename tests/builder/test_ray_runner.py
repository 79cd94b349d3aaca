"""The build flow on a real local Ray cluster (a head and a worker node started with `ray start`)
gives the same accounting and the same published rows as the threads runner."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from tessy_core.builder.config import BuildConfig
from tessy_core.builder.progress import listening
from tessy_core.publish import scan
from tessy_core.workers.process import free_ports

from tests.builder.helpers import build_config_dict, seed_catalog

pytestmark = pytest.mark.slow

# Columns that must match exactly between runners (wall times and sandbox timings may not).
SAME_COLUMNS = [
    "sample_id", "prompt_id", "sample_index", "mode", "messages", "problem", "thinking", "answer", "spans",
    "usage", "identities", "attempts", "attempt_failures", "teacher_token_share",
]


@contextmanager
def local_ray_cluster(nodes: int = 2, startup_timeout_s: float = 600.0) -> Iterator[str]:
    """`ray start --head` plus `nodes - 1` worker nodes on 127.0.0.1, one CPU and a small object
    store each; yields the head's address. Each node runs `ray start --block` in its own process
    group, so the teardown stops exactly the processes this fixture started."""
    # Ray puts Unix sockets under its temp dir: keep the path short.
    temp = Path(tempfile.mkdtemp(prefix="tessy-ray-", dir="/tmp"))
    port, dashboard_port, client_port = free_ports(3)
    address = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        # A raylet waits this long for its agents (15 s by default, then it aborts): on a loaded
        # 2-core machine their Python start-up alone can take longer.
        "RAY_agent_register_timeout_ms": "300000",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }
    ray_bin = str(Path(sys.executable).parent / "ray")
    per_node = [
        "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", str(100 * 2**20),
        "--disable-usage-stats", "--block",
    ]
    head_cmd = [
        ray_bin, "start", "--head", "--port", str(port), "--temp-dir", str(temp), "--include-dashboard=false",
        "--dashboard-port", str(dashboard_port), "--ray-client-server-port", str(client_port), *per_node,
    ]
    processes: list[subprocess.Popen] = []

    def stop(process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # `ray start --block` then stops its node
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever of this node is left
        except ProcessLookupError:
            pass
        process.wait()

    def start_node(cmd: list[str], name: str, deadline: float, attempts: int = 3) -> None:
        # Ray gives a new node's raylet a fixed 30 s to register with the GCS; on a loaded machine
        # that can run out, and the node exits: start it again.
        for attempt in range(1, attempts + 1):
            log_path = temp / f"{name}-{attempt}.log"
            with log_path.open("w") as log:
                process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            processes.append(process)
            while "Ray runtime started" not in log_path.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(1)
            else:
                return
            stop(process)
            if time.monotonic() > deadline or attempt == attempts:
                raise RuntimeError(f"ray {name} node did not start:\n{log_path.read_text()[-2000:]}")

    import ray

    try:
        deadline = time.monotonic() + startup_timeout_s
        start_node(head_cmd, "head", deadline)
        for index in range(1, nodes):
            start_node([ray_bin, "start", "--address", address, *per_node], f"worker-{index}", deadline)
        ray.init(address=address, namespace="prefect", log_to_driver=False)
        while len([n for n in ray.nodes() if n["Alive"]]) < nodes:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {nodes} ray nodes alive after {startup_timeout_s:.0f}s")
            time.sleep(1)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for process in reversed(processes):  # workers first, then the head
            stop(process)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    with local_ray_cluster(nodes=2) as address:
        yield address


def _published_rows(uri_root: Path, version: str) -> pl.DataFrame:
    rows = scan(str(uri_root), version).collect()
    verdicts = rows.get_column("verification").struct.field("verdict").alias("verdict")
    return rows.select(SAME_COLUMNS).with_columns(verdicts).sort("sample_id")


def test_ray_runner_builds_what_the_threads_runner_builds(prefect_harness, tmp_path, ending_models, ray_address):
    import ray

    from flows.build import run_build

    # Two catalogs with the same prompts, and the same output location: the config's identity (and so
    # the build id, sample ids and per-request seeds) is the same; only where shards run differs.
    datasets = tmp_path / "datasets"

    def config_for(name: str, runner: dict) -> BuildConfig:
        root = tmp_path / name
        root.mkdir()
        seed_catalog(root, 5)
        data = build_config_dict(
            root, ending_models, shard_size=None, runner=runner,
            output={"base_uri": str(datasets)}, lineage={"directory": str(root / "lineage")},
        )
        # Automatic shards are 1x to 4x the engine's concurrency: 1 makes a shard of each prompt.
        data["generation"]["engine"]["concurrency"] = 1
        return BuildConfig.model_validate(data)

    # Two shards at once on threads: seeded sampling in one process stays reproducible (the
    # transformers backend samples under one process-wide lock).
    threads_config = config_for("threads", {"kind": "threads", "max_workers": 2})
    ray_config = config_for("ray", {"kind": "ray", "max_workers": 2, "ray_address": ray_address})
    assert threads_config.identity() == ray_config.identity()

    seen: dict[str, list[str]] = {"threads": [], "ray": []}
    with listening(lambda e: seen["threads"].append(e.data["shard_id"]) if e.kind == "sample" else None):
        threads = run_build(threads_config)
    threads_rows = _published_rows(datasets, threads.version)
    datasets.rename(tmp_path / "datasets-threads")  # the Ray build publishes its own v1 there

    with listening(lambda e: seen["ray"].append(e.data["shard_id"]) if e.kind == "sample" else None):
        state = run_build(ray_config, return_state=True)
    assert state.is_completed(), state.message
    on_ray = state.result()

    # Auto-sized shards: 5 samples, one in flight per shard -> 5 shards, pulled by the free node.
    assert threads.shards["total"] == on_ray.shards["total"] == 5
    # The shards ran in Ray's worker processes: nothing was generated in this process.
    assert len(seen["threads"]) == 5 and seen["ray"] == []
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2

    assert threads.status == on_ray.status == "published"
    assert on_ray.build_id == threads.build_id and on_ray.version == threads.version == "tiny@v1"
    assert on_ray.counts == threads.counts and on_ray.counts["pending"] == 0
    assert sum(on_ray.counts.values()) == 5
    assert on_ray.reasons == threads.reasons
    assert on_ray.usage == threads.usage
    ray_rows = _published_rows(datasets, on_ray.version)
    assert ray_rows.height == threads.counts["published"] >= 1
    assert ray_rows.equals(threads_rows)

