"""Several processes share one catalog file: writers take turns, readers see consistent states."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tessy_core.catalog import Catalog, CatalogConfig, CatalogLocked, CatalogNotFound, IngestConfig, IngestReport, ingest
from tests.catalog import samples

ROWS_PER_WRITER = 600
OVERLAP = 300


def _rows(first: int) -> list[dict[str, Any]]:
    return [
        {"statement": f"Problem number {i}.", "tests": [{"kind": "stdio", "input": str(i), "output": str(i)}]}
        for i in range(first, first + ROWS_PER_WRITER)
    ]


def _ingest_worker(db: str, path: str, source: str, start: Any, results: Any) -> None:
    catalog = Catalog(db, CatalogConfig(lock_timeout_s=60))
    start.wait()
    report = ingest(catalog, [path], source, config=IngestConfig(batch_rows=20))
    results.put(("writer", source, report.model_dump()))


def _count(connection: Any) -> tuple[int, int]:
    ((total, distinct),) = connection.execute("SELECT count(*), count(DISTINCT prompt_id) FROM prompts").fetchall()
    return total, distinct


def _reader_worker(db: str, start: Any, stop: Any, results: Any) -> None:
    catalog = Catalog(db, CatalogConfig(lock_timeout_s=60))
    seen: list[tuple[int, int]] = []
    start.wait()
    while not stop.is_set():
        try:
            seen.append(catalog.read(_count))
        except CatalogNotFound:
            pass
        time.sleep(0.005)
    results.put(("reader", "", seen))


def test_two_writers_and_a_reader_end_consistent(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.duckdb")
    first = samples.write_jsonl(tmp_path / "first.jsonl", _rows(0))
    second = samples.write_jsonl(tmp_path / "second.jsonl", _rows(OVERLAP))
    context = multiprocessing.get_context("spawn")
    # The barrier lines the three processes up after their (slow) spawn, so they really overlap.
    results, start, stop = context.Queue(), context.Barrier(3), context.Event()
    reader = context.Process(target=_reader_worker, args=(db, start, stop, results))
    writers = [
        context.Process(target=_ingest_worker, args=(db, str(path), source, start, results))
        for path, source in ((first, "first"), (second, "second"))
    ]
    reader.start()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    stop.set()
    reader.join(timeout=60)
    assert reader.exitcode == 0

    outputs = [results.get(timeout=5) for _ in range(3)]
    reports = {source: IngestReport(**payload) for role, source, payload in outputs if role == "writer"}
    (seen,) = [payload for role, _, payload in outputs if role == "reader"]

    unique = ROWS_PER_WRITER + OVERLAP
    assert sum(report.added for report in reports.values()) == unique
    assert sum(report.duplicates for report in reports.values()) == 2 * ROWS_PER_WRITER - unique
    assert all(report.read == ROWS_PER_WRITER and report.rejected == 0 for report in reports.values())
    assert Catalog(db).read(_count) == (unique, unique)
    print({s: r.added for s, r in reports.items()}, len(seen), sorted(set(t for t, _ in seen))[:40])
    assert seen, "the reader never got a turn"
    assert all(total == distinct for total, distinct in seen)
    assert [total for total, _ in seen] == sorted(total for total, _ in seen)


def _hold_lock(db: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process that keeps the catalog open for writing for `seconds`."""
    script = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(float(sys.argv[2]))"
    holder = subprocess.Popen([sys.executable, "-c", script, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_waits_for_a_lock_and_then_gives_up_clearly(tmp_path: Path) -> None:
    db = tmp_path / "locked.duckdb"
    holder = _hold_lock(db, 30)
    try:
        impatient = Catalog(db, CatalogConfig(lock_timeout_s=0.5))
        started = time.monotonic()
        with pytest.raises(CatalogLocked, match="stayed busy for 0.5s"):
            impatient.write(lambda connection: None)
        assert 0.5 <= time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()


def test_an_operation_proceeds_once_the_lock_is_released(tmp_path: Path) -> None:
    db = tmp_path / "busy.duckdb"
    holder = _hold_lock(db, 1.0)
    try:
        started = time.monotonic()
        ingest(Catalog(db, CatalogConfig(lock_timeout_s=30)), [samples.write_jsonl(tmp_path / "a.jsonl", [samples.TESSY_ROW])], "s")
        assert time.monotonic() - started >= 0.5
    finally:
        holder.wait(timeout=30)
    assert Catalog(db).read(_count) == (1, 1)
