"""Stream the rows of JSONL and Parquet files one at a time, keeping each row's original text.

A row that can't even be parsed (bad bytes, bad JSON, not an object) comes out with its error
instead of stopping the file, so the caller can record it and carry on.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow.parquet as pq

from tessy_core.catalog.formats import RowRejected

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
PARQUET_BATCH_ROWS = 1024


class UnsupportedInput(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RawRow:
    """One input row: its decoded object, or why it could not be decoded."""

    line_no: int  # 1-based line (JSONL) or row (Parquet)
    parsed: dict[str, Any] | RowRejected
    # JSONL keeps the line as read; Parquet rows are serialized only when someone asks.
    text: str | None = None

    def original_text(self) -> str:
        if self.text is not None:
            return self.text
        return json.dumps(self.parsed, ensure_ascii=False, default=str)


def ensure_readable(path: Path) -> None:
    """Fail before ingesting anything if a path is missing or of an unsupported type."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.name.lower().endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES):
        supported = ", ".join(JSONL_SUFFIXES + PARQUET_SUFFIXES)
        raise UnsupportedInput(f"{path}: unsupported file type (supported: {supported})")


def iter_raw_rows(path: Path) -> Iterator[RawRow]:
    ensure_readable(path)
    if path.name.lower().endswith(PARQUET_SUFFIXES):
        return _iter_parquet(path)
    return _iter_jsonl(path)


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _iter_jsonl(path: Path) -> Iterator[RawRow]:
    with _open_binary(path) as stream:
        for line_no, raw in enumerate(stream, start=1):
            if line_no == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # UTF-8 byte order mark
            if not raw.strip():
                continue
            yield _parse_jsonl_line(line_no, raw.rstrip(b"\r\n"))


def _parse_jsonl_line(line_no: int, raw: bytes) -> RawRow:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        readable = raw.decode("utf-8", errors="backslashreplace")
        reason = RowRejected("not_utf8", f"invalid UTF-8 byte at offset {error.start}")
        return RawRow(line_no, reason, readable)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        reason = RowRejected("malformed_json", f"{error.msg} at char {error.pos}")
        return RawRow(line_no, reason, text)
    if not isinstance(data, dict):
        reason = RowRejected("not_an_object", f"row is a JSON {type(data).__name__}, not an object")
        return RawRow(line_no, reason, text)
    return RawRow(line_no, data, text)


def _iter_parquet(path: Path) -> Iterator[RawRow]:
    line_no = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for data in batch.to_pylist():
            line_no += 1
            yield RawRow(line_no, data)
