"""Write a published split as JSONL in a TRL conversational format.

- "messages":          {"messages": [{"role", "content"}, ...]}
- "prompt-completion": {"prompt": [turns before the last assistant turn],
                        "completion": [the last assistant turn]}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import pyarrow.parquet as pq

from tessy_core.publish.errors import DatasetNotFoundError, ExportError
from tessy_core.publish.naming import DatasetRef, version_dir
from tessy_core.publish.reader import resolve
from tessy_core.publish.storage import Storage, StorageConfig
from tessy_core.publish.versions import version_path

ExportFormat = Literal["messages", "prompt-completion"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
_BATCH_ROWS = 1024

Message = dict[str, str]


@dataclass(frozen=True)
class ExportResult:
    ref: str
    split: str
    format: ExportFormat
    path: str
    rows: int


def export(
    base: str,
    ref: str | DatasetRef,
    format: ExportFormat,
    out_path: str | Path,
    *,
    split: str = "train",
    storage: StorageConfig | None = None,
) -> ExportResult:
    """Write `split` of `ref` to `out_path` (JSONL). The file appears only once complete."""
    if format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    store = Storage(base, storage)
    manifest = resolve(base, ref, storage=storage)
    entry = manifest.splits.get(split)
    if entry is None:
        raise DatasetNotFoundError(
            f"{manifest.name}@{version_dir(manifest.version)} has no split {split!r}; it has {sorted(manifest.splits)}"
        )
    files = [version_path(manifest.name, manifest.version, file.path) for file in entry.files]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            rows = 0
            for sample_id, messages in _iter_messages(store, files):
                handle.write(json.dumps(format_row(messages, format, sample_id), ensure_ascii=False) + "\n")
                rows += 1
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return ExportResult(f"{manifest.name}@{version_dir(manifest.version)}", split, format, str(out), rows)


def format_row(messages: list[dict[str, Any]], format: ExportFormat, sample_id: str) -> dict[str, list[Message]]:
    turns = [{"role": message["role"], "content": message["content"]} for message in messages]
    if format == "messages":
        return {"messages": turns}
    return _prompt_completion(turns, sample_id)


def _prompt_completion(turns: list[Message], sample_id: str) -> dict[str, list[Message]]:
    assistant_positions = [index for index, turn in enumerate(turns) if turn["role"] == "assistant"]
    if not assistant_positions or assistant_positions[-1] == 0:
        raise ExportError(
            f"sample {sample_id!r} cannot be split into prompt/completion: "
            "it needs at least one turn before its last assistant turn"
        )
    last = assistant_positions[-1]
    return {"prompt": turns[:last], "completion": turns[last:]}


def _iter_messages(store: Storage, files: list[str]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(sample_id, messages) of every row, file by file, a batch at a time."""
    for relative in files:
        with store.open_read(relative) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=_BATCH_ROWS, columns=["sample_id", "messages"]):
                yield from zip(batch.column("sample_id").to_pylist(), batch.column("messages").to_pylist())
