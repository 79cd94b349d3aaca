"""Ingest prompt files into the catalog: streamed, batched, idempotent, bad rows kept aside.

Every row read ends up in exactly one bucket: added, duplicate (its normalized statement is already
in the catalog or earlier in the input) or rejected (recorded in `prompt_rejects` with the reason,
file, line and original text). So `read == added + duplicates + rejected` for every run.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.catalog.connection import Catalog, changed_rows
from tessy_core.catalog.files import RawRow, ensure_readable, iter_raw_rows
from tessy_core.catalog.formats import RowFormat, RowRejected, detect_format, map_row
from tessy_core.catalog.schema import TESTS_ADAPTER, PromptRecord
from tessy_core.catalog.sql import query


class IngestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_statement_chars: int = Field(50_000, gt=0, description="longer statements are rejected")
    batch_rows: int = Field(5_000, gt=0, description="rows written per transaction")
    # CodeContests rows can carry megabytes of generated tests: bound a batch's memory as well.
    batch_bytes: int = Field(64 * 1024 * 1024, gt=0)
    max_reject_text_chars: int = Field(1_000_000, gt=0, description="cap on the stored original row")


class IngestReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    read: int = 0
    added: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)


_PROMPTS_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("source", pa.string()),
        ("source_id", pa.string()),
        ("license", pa.string()),
        ("statement", pa.string()),
        ("tests", pa.string()),
        ("n_tests", pa.int32()),
        ("n_hidden_tests", pa.int32()),
        ("test_kind", pa.string()),
        ("fn_name", pa.string()),
        ("starter_code", pa.string()),
        ("time_limit_s", pa.float64()),
        ("memory_limit_mb", pa.int32()),
        ("difficulty", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("language", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
    ]
)

_REJECTS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("source_file", pa.string()),
        ("line_no", pa.int64()),
        ("raw_sha256", pa.string()),
        ("reason_code", pa.string()),
        ("reason", pa.string()),
        ("row_format", pa.string()),
        ("raw_text", pa.string()),
        ("raw_chars", pa.int64()),
        ("rejected_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class _Batch:
    """Rows waiting for the next write, kept as plain column values (not Python objects per row)."""

    prompts: list[dict[str, Any]] = field(default_factory=list)
    prompt_ids: set[str] = field(default_factory=set)
    rejects: dict[tuple[str, int, str], dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    size_bytes: int = 0

    def __len__(self) -> int:
        return len(self.prompts) + len(self.rejects) + self.duplicates


def ingest(
    catalog: Catalog,
    paths: Iterable[Path | str],
    source: str,
    format: RowFormat | str = RowFormat.AUTO,
    config: IngestConfig | None = None,
    on_progress: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Read every row of `paths` into the catalog under `source`; returns what happened to them.

    All paths are checked before anything is written. `on_progress` gets the running report after
    each committed batch.
    """
    if not source.strip():
        raise ValueError("source must be a non-empty name")
    config = config or IngestConfig()
    row_format = RowFormat(format)
    files = list(dict.fromkeys(Path(path).resolve() for path in paths))
    for path in files:
        ensure_readable(path)

    report = IngestReport()
    reasons: Counter[str] = Counter()
    batch = _Batch()
    for path in files:
        for raw in iter_raw_rows(path):
            report.read += 1
            _add_row(batch, raw, str(path), source, row_format, config)
            if len(batch) >= config.batch_rows or batch.size_bytes >= config.batch_bytes:
                batch = _commit(catalog, batch, report, reasons, on_progress)
    _commit(catalog, batch, report, reasons, on_progress)
    return report


def _add_row(
    batch: _Batch,
    raw: RawRow,
    source_file: str,
    source: str,
    row_format: RowFormat,
    config: IngestConfig,
) -> None:
    if isinstance(raw.parsed, RowRejected):
        _add_reject(batch, raw, source_file, source, None, raw.parsed, config)
        return
    tried: RowFormat | None = None
    try:
        tried = detect_format(raw.parsed) if row_format is RowFormat.AUTO else row_format
        record = map_row(raw.parsed, source, tried)
        if len(record.statement) > config.max_statement_chars:
            raise RowRejected(
                "statement_too_long",
                f"statement has {len(record.statement)} characters (limit {config.max_statement_chars})",
            )
    except RowRejected as rejected:
        _add_reject(batch, raw, source_file, source, tried, rejected, config)
        return
    if record.prompt_id in batch.prompt_ids:
        batch.duplicates += 1
        return
    columns = _prompt_columns(record, source_file, raw.line_no)
    batch.prompt_ids.add(record.prompt_id)
    batch.prompts.append(columns)
    batch.size_bytes += len(columns["statement"]) + len(columns["tests"])


def _prompt_columns(record: PromptRecord, source_file: str, line_no: int) -> dict[str, Any]:
    return {
        "prompt_id": record.prompt_id,
        "source": record.source,
        "source_id": record.source_id,
        "license": record.license,
        "statement": record.statement,
        "tests": TESTS_ADAPTER.dump_json(record.tests).decode("utf-8"),
        "n_tests": len(record.tests),
        "n_hidden_tests": record.hidden_test_count,
        "test_kind": record.test_kind,
        "fn_name": record.fn_name,
        "starter_code": record.starter_code,
        "time_limit_s": record.time_limit_s,
        "memory_limit_mb": record.memory_limit_mb,
        "difficulty": record.difficulty,
        "tags": record.tags,
        "language": record.language,
        "ingested_at": record.ingested_at,
        "source_file": source_file,
        "source_line": line_no,
    }


def _add_reject(
    batch: _Batch,
    raw: RawRow,
    source_file: str,
    source: str,
    row_format: RowFormat | None,
    rejected: RowRejected,
    config: IngestConfig,
) -> None:
    text = raw.original_text()
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
    stored = text[: config.max_reject_text_chars]
    batch.rejects[(source_file, raw.line_no, digest)] = {
        "source": source,
        "source_file": source_file,
        "line_no": raw.line_no,
        "raw_sha256": digest,
        "reason_code": rejected.code,
        "reason": rejected.detail,
        "row_format": row_format.value if row_format is not None else None,
        "raw_text": stored,
        "raw_chars": len(text),
        "rejected_at": datetime.now(UTC),
    }
    batch.size_bytes += len(stored)


def _commit(
    catalog: Catalog,
    batch: _Batch,
    report: IngestReport,
    reasons: Counter[str],
    on_progress: Callable[[IngestReport], None] | None,
) -> _Batch:
    """Write the batch in one transaction, fold its counts into `report`; returns an empty batch."""
    if len(batch) == 0:
        return batch
    prompts = pa.Table.from_pylist(batch.prompts, schema=_PROMPTS_SCHEMA)
    rejects = pa.Table.from_pylist(list(batch.rejects.values()), schema=_REJECTS_SCHEMA)

    def write(connection: duckdb.DuckDBPyConnection) -> int:
        connection.register("incoming_prompts", prompts)
        connection.register("incoming_rejects", rejects)
        added = changed_rows(connection.execute(query("insert_prompts")))
        changed_rows(connection.execute(query("insert_rejects")))
        return added

    added = catalog.write(write)
    report.added += added
    report.duplicates += batch.duplicates + len(batch.prompts) - added
    report.rejected += len(batch.rejects)
    reasons.update(reject["reason_code"] for reject in batch.rejects.values())
    report.rejected_by_reason = dict(sorted(reasons.items()))
    if on_progress is not None:
        on_progress(report)
    return _Batch()
