"""The `Catalog` handle: one short-lived DuckDB connection per operation, taking turns on the file.

DuckDB lets one process write a database file at a time (and a writer excludes readers in other
processes). Each operation therefore opens the file, runs in one transaction and closes it again,
so builds, ingestion and reporting in different processes interleave instead of failing. An
operation that finds the file locked retries with jittered exponential backoff and raises
`CatalogLocked` once `lock_timeout_s` has passed.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.catalog.sql import sql_text

T = TypeVar("T")

DEFAULT_CATALOG_PATH = Path("var") / "catalog.duckdb"
CATALOG_ENV_VAR = "TESSY_CATALOG"


class CatalogError(RuntimeError):
    pass


class CatalogLocked(CatalogError):
    pass


class CatalogNotFound(CatalogError):
    pass


class CatalogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lock_timeout_s: float = Field(120.0, gt=0, description="give up on a locked file after this")
    first_retry_s: float = Field(0.02, gt=0)
    max_retry_s: float = Field(1.0, gt=0)


def default_catalog_path() -> Path:
    """`$TESSY_CATALOG`, else `./var/catalog.duckdb`."""
    return Path(os.environ.get(CATALOG_ENV_VAR) or DEFAULT_CATALOG_PATH)


# DuckDB 2 refuses new work on a connection whose last result was not read to the end, so these
# helpers always drain the cursor.


def first_row(cursor: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    rows = cursor.fetchall()
    return rows[0] if rows else None


def changed_rows(cursor: duckdb.DuckDBPyConnection) -> int:
    """The row count an INSERT/UPDATE reports."""
    ((count,),) = cursor.fetchall()
    return int(count)


def fetch_dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """All remaining rows of an executed query as {column: value} dicts."""
    columns = [description[0] for description in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _is_contention(error: duckdb.Error) -> bool:
    """Errors that mean "someone else holds the file or the rows right now"; all others are real."""
    message = str(error)
    if isinstance(error, duckdb.IOException):
        return "Could not set lock" in message or "Conflicting lock" in message
    if isinstance(error, duckdb.ConnectionException):
        # Same process, another thread holds the file open with the other read_only setting.
        return "different configuration" in message
    if isinstance(error, duckdb.TransactionException):
        return "conflict" in message.lower()
    return False


class Catalog:
    """A catalog file. Cheap to create; nothing is opened until an operation runs."""

    def __init__(self, path: Path | str, config: CatalogConfig | None = None) -> None:
        self.path = Path(path)
        self.config = config or CatalogConfig()
        self._schema_applied = False

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    def write(self, operation: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `operation` in one read-write transaction (committed, or rolled back on error)."""
        return self._with_retries(lambda: self._run(operation, read_only=False))

    def read(self, operation: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `operation` on a read-only connection. The catalog file must exist."""
        if not self.path.is_file():
            raise CatalogNotFound(f"no catalog at {self.path}; ingest prompts first (tessy catalog ingest)")
        return self._with_retries(lambda: self._run(operation, read_only=True))

    def _run(self, operation: Callable[[duckdb.DuckDBPyConnection], T], read_only: bool) -> T:
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = duckdb.connect(str(self.path), read_only=read_only)
        try:
            if not read_only and not self._schema_applied:
                connection.execute(sql_text("schema"))
                self._schema_applied = True
            connection.begin()
            try:
                result = operation(connection)
                connection.commit()
            except BaseException:
                # A failed commit has already ended the transaction; keep the original error.
                with contextlib.suppress(duckdb.TransactionException):
                    connection.rollback()
                raise
            return result
        finally:
            connection.close()

    def _with_retries(self, attempt: Callable[[], T]) -> T:
        deadline = time.monotonic() + self.config.lock_timeout_s
        delay = self.config.first_retry_s
        while True:
            try:
                return attempt()
            except duckdb.Error as error:
                if not _is_contention(error):
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CatalogLocked(
                        f"catalog {self.path} stayed busy for {self.config.lock_timeout_s:g}s "
                        f"(another process holds it); last error: {error}"
                    ) from error
                # Full jitter keeps processes that collided from retrying in lock step.
                time.sleep(min(remaining, random.uniform(0, delay)))
                delay = min(delay * 2, self.config.max_retry_s)
