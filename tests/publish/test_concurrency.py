"""Publishers racing for the same dataset name end with distinct complete versions, never a mix."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tessy_core.publish import collect_garbage, list_versions, read_manifest, scan, verify
from tessy_core.publish.storage import Storage
from tests.publish._workers import publish_and_die, publish_in_race, publish_toy, synchronized_commits


def assert_two_complete_versions(base: str, rows_by_build: dict[str, int]) -> None:
    assert list_versions(base, "toy") == [1, 2]
    seen = {}
    for version in (1, 2):
        manifest = verify(base, f"toy@v{version}")
        frame = scan(base, f"toy@v{version}").collect()
        # Every row of a version comes from the build its manifest names: nothing merged.
        assert frame["sample_id"].str.starts_with(manifest.build_id).all()
        assert frame.height == manifest.row_counts["train"] == rows_by_build[manifest.build_id]
        seen[manifest.build_id] = version
    assert set(seen) == set(rows_by_build)
    assert read_manifest(base, "toy", 2).parent_version == 1


def test_threads_racing_get_v1_and_v2(tmp_path: Path, monkeypatch) -> None:
    base = str(tmp_path / "datasets")
    for method, replacement in synchronized_commits(threading.Barrier(2)).items():
        monkeypatch.setattr(Storage, method, replacement)
    rows_by_build = {"alpha": 3, "beta": 5}
    with ThreadPoolExecutor(2) as pool:
        versions = list(pool.map(lambda build: publish_toy(base, build, rows_by_build[build]), rows_by_build))
    assert sorted(versions) == [1, 2]
    assert_two_complete_versions(base, rows_by_build)


@pytest.mark.slow
def test_processes_racing_get_v1_and_v2(tmp_path: Path) -> None:
    base = str(tmp_path / "datasets")
    context = multiprocessing.get_context("spawn")
    rows_by_build = {"alpha": 4, "beta": 6}
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        barrier = manager.Barrier(2)
        futures = [pool.submit(publish_in_race, base, build, rows, barrier) for build, rows in rows_by_build.items()]
        versions = sorted(future.result(timeout=120) for future in futures)
    assert versions == [1, 2]
    assert_two_complete_versions(base, rows_by_build)


@pytest.mark.slow
def test_killed_publisher_leaves_no_version_and_a_retry_succeeds(tmp_path: Path) -> None:
    base = str(tmp_path / "datasets")
    process = multiprocessing.get_context("spawn").Process(target=publish_and_die, args=(base,))
    process.start()
    process.join(timeout=120)
    assert process.exitcode == 17

    assert list_versions(base, "toy") == []
    assert len(list((Path(base) / "toy" / ".staging").iterdir())) == 1  # the crash left its staging

    assert publish_toy(base, "retry", 2) == 1
    assert scan(base, "toy@v1").collect().height == 2
    removed = collect_garbage(base, older_than_hours=1, now=datetime.now(timezone.utc) + timedelta(hours=2))
    assert len(removed) == 1 and "doomed" in removed[0]
