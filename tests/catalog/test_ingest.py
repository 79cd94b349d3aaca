from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest

from tessy_core.catalog import Catalog, IngestConfig, IngestReport, PromptFilter, ingest, map_row, select_prompts
from tessy_core.catalog.files import UnsupportedInput
from tests.catalog import samples


def _rows(catalog: Catalog, sql: str) -> list[tuple]:
    return catalog.read(lambda connection: connection.execute(sql).fetchall())


def _assert_balanced(report: IngestReport) -> None:
    assert report.read == report.added + report.duplicates + report.rejected


def test_every_shape_from_jsonl_and_parquet(catalog: Catalog, tmp_path: Path) -> None:
    rows = list(samples.ALL_SHAPES.values())
    report = ingest(catalog, [samples.write_jsonl(tmp_path / "all.jsonl", rows)], "mixed")
    assert report == IngestReport(read=len(rows), added=len(rows))

    stored = {record.prompt_id: record for record in select_prompts(catalog)}
    for row in rows:
        expected = map_row(row, "mixed")
        assert stored[expected.prompt_id].model_dump(exclude={"ingested_at"}) == expected.model_dump(
            exclude={"ingested_at"}
        )

    # Parquet needs one schema per file: one file per shape. Same statements, so all duplicates.
    parquet_files = [samples.write_parquet(tmp_path / f"{name}.parquet", [row]) for name, row in samples.ALL_SHAPES.items()]
    report = ingest(catalog, parquet_files, "mixed-parquet")
    assert report == IngestReport(read=len(rows), duplicates=len(rows))


def test_parquet_rows_are_mapped_like_jsonl_rows(catalog: Catalog, tmp_path: Path) -> None:
    for name, row in samples.ALL_SHAPES.items():
        ingest(catalog, [samples.write_parquet(tmp_path / f"{name}.parquet", [row])], "pq")
    stored = {record.prompt_id: record for record in select_prompts(catalog)}
    for row in samples.ALL_SHAPES.values():
        expected = map_row(row, "pq")
        assert stored[expected.prompt_id].tests == expected.tests


def test_reingesting_a_file_adds_nothing(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(
        json.dumps(samples.TESSY_ROW) + "\n" + json.dumps(samples.APPS_STDIO_ROW) + "\n{broken\n", encoding="utf-8"
    )
    first = ingest(catalog, [path], "s")
    second = ingest(catalog, [path], "s")
    assert (first.added, first.duplicates, first.rejected) == (2, 0, 1)
    assert (second.added, second.duplicates, second.rejected) == (0, 2, 1)
    assert _rows(catalog, "SELECT count(*) FROM prompts") == [(2,)]
    assert _rows(catalog, "SELECT count(*) FROM prompt_rejects") == [(1,)]


def test_same_normalized_statement_is_one_prompt_first_source_wins(catalog: Catalog, tmp_path: Path) -> None:
    first = samples.write_jsonl(tmp_path / "a.jsonl", [{"prompt": "Sort the list."}, {"prompt": "  Sort the\r\nlist. "}])
    second = samples.write_jsonl(tmp_path / "b.jsonl", [{"question": "Sort  the list."}])
    assert ingest(catalog, [first], "a") == IngestReport(read=2, added=1, duplicates=1)
    assert ingest(catalog, [second], "b") == IngestReport(read=1, duplicates=1)
    assert _rows(catalog, "SELECT source, statement, source_line FROM prompts") == [("a", "Sort the list.", 1)]


def test_bad_rows_are_recorded_and_the_rest_is_ingested(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.duckdb")
    good = json.dumps({"prompt": "A good prompt."})
    lines = [
        good.encode(),
        b'{"prompt": "unterminated',
        b'{"prompt": "bad byte \xff here"}',
        b"[1, 2, 3]",
        json.dumps({"statement": "", "tests": []}).encode(),
        json.dumps({"question": ["not", "a", "string"], "input_output": ""}).encode(),
        json.dumps({"statement": "S", "tests": [{"kind": "stdio", "input": "1"}]}).encode(),
        json.dumps({"prompt": "x" * 101}).encode(),
        json.dumps({"title": "unknown shape"}).encode(),
        b"",
        json.dumps({"prompt": "Another good prompt."}).encode(),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    report = ingest(catalog, [path], "dirty", config=IngestConfig(max_statement_chars=100))

    assert (report.read, report.added, report.rejected) == (10, 2, 8)
    _assert_balanced(report)
    expected = {
        2: "malformed_json",
        3: "not_utf8",
        4: "not_an_object",
        5: "missing_statement",
        6: "wrong_type",
        7: "invalid_tests",
        8: "statement_too_long",
        9: "unknown_shape",
    }
    assert report.rejected_by_reason == {code: 1 for code in expected.values()}
    stored = _rows(catalog, "SELECT line_no, reason_code, source, source_file, raw_text FROM prompt_rejects ORDER BY line_no")
    assert {row[0]: row[1] for row in stored} == expected
    assert {(row[2], row[3]) for row in stored} == {("dirty", str(path.resolve()))}
    raw_text = {row[0]: row[4] for row in stored}
    assert raw_text[2] == '{"prompt": "unterminated'
    assert raw_text[3] == '{"prompt": "bad byte \\xff here"}'
    assert raw_text[6] == lines[5].decode()


def test_small_batches_count_duplicates_across_batch_boundaries(catalog: Catalog, tmp_path: Path) -> None:
    rows = [{"prompt": f"Problem {i % 4}."} for i in range(9)] + [{"nope": 1}]
    path = samples.write_jsonl(tmp_path / "rows.jsonl", rows)
    report = ingest(catalog, [path], "s", config=IngestConfig(batch_rows=2))
    assert report == IngestReport(read=10, added=4, duplicates=5, rejected=1, rejected_by_reason={"unknown_shape": 1})


def test_progress_is_reported_after_each_batch(catalog: Catalog, tmp_path: Path) -> None:
    path = samples.write_jsonl(tmp_path / "rows.jsonl", [{"prompt": f"P{i}"} for i in range(5)])
    seen: list[int] = []
    ingest(catalog, [path], "s", config=IngestConfig(batch_rows=2), on_progress=lambda r: seen.append(r.read))
    assert seen == [2, 4, 5]


def test_stored_reject_text_is_capped_but_its_length_kept(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text("{" + "x" * 50 + "\n", encoding="utf-8")
    ingest(catalog, [path], "s", config=IngestConfig(max_reject_text_chars=10))
    assert _rows(catalog, "SELECT raw_text, raw_chars FROM prompt_rejects") == [("{" + "x" * 9, 51)]


def test_gzipped_jsonl(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        stream.write(json.dumps(samples.CODECONTESTS_ROW) + "\n")
    assert ingest(catalog, [path], "cc").added == 1


def test_inputs_are_checked_before_anything_is_written(catalog: Catalog, tmp_path: Path) -> None:
    good = samples.write_jsonl(tmp_path / "good.jsonl", [samples.TESSY_ROW])
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        ingest(catalog, [good, tmp_path / "missing.jsonl"], "s")
    (tmp_path / "rows.csv").write_text("a,b\n")
    with pytest.raises(UnsupportedInput, match="unsupported file type"):
        ingest(catalog, [good, tmp_path / "rows.csv"], "s")
    assert not catalog.path.exists()


def test_unknown_format_name_is_refused(catalog: Catalog, tmp_path: Path) -> None:
    good = samples.write_jsonl(tmp_path / "good.jsonl", [samples.TESSY_ROW])
    with pytest.raises(ValueError, match="apps-v2"):
        ingest(catalog, [good], "s", format="apps-v2")


def test_filter_sees_ingested_prompts(catalog: Catalog, tmp_path: Path) -> None:
    ingest(catalog, [samples.write_jsonl(tmp_path / "a.jsonl", list(samples.ALL_SHAPES.values()))], "mix")
    with_tests = select_prompts(catalog, PromptFilter(min_tests=1))
    assert len(with_tests) == len(samples.ALL_SHAPES) - 1
    stored_tests = _rows(catalog, "SELECT sum(n_tests), sum(n_hidden_tests) FROM prompts")
    assert stored_tests == [(sum(len(r.tests) for r in with_tests), sum(r.hidden_test_count for r in with_tests))]


def test_reads_cannot_write(catalog: Catalog, tmp_path: Path) -> None:
    ingest(catalog, [samples.write_jsonl(tmp_path / "a.jsonl", [samples.TESSY_ROW])], "s")
    with pytest.raises(duckdb.Error, match="read-only"):
        _rows(catalog, "DELETE FROM prompts")
