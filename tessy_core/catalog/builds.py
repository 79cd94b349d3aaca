"""Builds and their samples: every sample of a build is accounted for with an outcome.

A build registers its samples as `pending` when it plans them and moves each to `published`,
`rejected` or `failed` (with a reason) as it goes; `build_accounting` then says whether anything
is still unaccounted for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tessy_core.catalog.connection import (
    Catalog,
    CatalogError,
    changed_rows,
    fetch_dicts,
    first_row,
)
from tessy_core.catalog.sql import query
from tessy_core.identity import config_hash


class SampleOutcome(StrEnum):
    PUBLISHED = "published"
    REJECTED = "rejected"
    FAILED = "failed"
    PENDING = "pending"


class BuildStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BuildConflict(CatalogError):
    pass


class UnknownBuild(CatalogError):
    pass


class UnknownPrompts(CatalogError):
    pass


class SampleOutcomeRow(BaseModel):
    """Where one sample of a build stands. Rejected and failed samples must say why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample_id: str = Field(min_length=1)
    prompt_id: str = Field(min_length=1)
    sample_index: int = Field(ge=0)
    outcome: SampleOutcome
    reason: str | None = None

    @model_validator(mode="after")
    def _reason_when_not_kept(self) -> SampleOutcomeRow:
        if self.outcome in (SampleOutcome.REJECTED, SampleOutcome.FAILED) and not self.reason:
            raise ValueError(f"a {self.outcome.value} sample needs a reason")
        return self


class BuildAccounting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    build_id: str
    published: int = 0
    rejected: int = 0
    failed: int = 0
    pending: int = 0

    @property
    def total(self) -> int:
        return self.published + self.rejected + self.failed + self.pending

    @property
    def complete(self) -> bool:
        """True when no sample is left pending."""
        return self.pending == 0


def record_build_start(catalog: Catalog, build_id: str, dataset_name: str, config: Mapping[str, Any]) -> str:
    """Mark a build as running and return its config hash.

    Starting an existing build again (a resume) is allowed only with the same dataset and config.
    """
    digest = config_hash(config)
    params = {
        "build_id": build_id,
        "dataset_name": dataset_name,
        "config": json.dumps(config, sort_keys=True),
        "config_hash": digest,
        "started_at": datetime.now(UTC),
    }

    def run(connection: duckdb.DuckDBPyConnection) -> str:
        existing = first_row(connection.execute(query("select_build"), {"build_id": build_id}))
        if existing is not None and (existing[1], existing[2]) != (dataset_name, digest):
            raise BuildConflict(
                f"build {build_id} exists for dataset {existing[1]!r} with config {existing[2][:12]}; "
                f"refusing to resume it as {dataset_name!r} with config {digest[:12]}"
            )
        changed_rows(connection.execute(query("start_build"), params))
        return digest

    return catalog.write(run)


def record_build_finish(catalog: Catalog, build_id: str, status: BuildStatus | str) -> BuildAccounting:
    """Close a build with its final status and freeze its outcome counts; returns those counts."""
    status = BuildStatus(status)
    if status is BuildStatus.RUNNING:
        raise ValueError("a finished build needs a final status, not running")

    def run(connection: duckdb.DuckDBPyConnection) -> BuildAccounting:
        _require_build(connection, build_id)
        accounting = _accounting(connection, build_id)
        counts = accounting.model_dump(exclude={"build_id"})
        finish = connection.execute(
            query("finish_build"),
            {
                "build_id": build_id,
                "status": status.value,
                "finished_at": datetime.now(UTC),
                "counts": json.dumps(counts, sort_keys=True),
            },
        )
        changed_rows(finish)
        return accounting

    return catalog.write(run)


_SAMPLES_SCHEMA = pa.schema(
    [
        ("build_id", pa.string()),
        ("sample_id", pa.string()),
        ("prompt_id", pa.string()),
        ("sample_index", pa.int32()),
        ("outcome", pa.string()),
        ("reason", pa.string()),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)


def upsert_build_samples(catalog: Catalog, build_id: str, samples: Sequence[SampleOutcomeRow]) -> int:
    """Record the outcomes of a batch of samples in one transaction; returns how many were written.

    A sample listed twice keeps its last outcome. Every prompt_id must be in the catalog.
    """
    latest = {sample.sample_id: sample for sample in samples}
    if not latest:
        return 0
    now = datetime.now(UTC)
    rows = [
        {"build_id": build_id, **sample.model_dump(mode="json"), "updated_at": now} for sample in latest.values()
    ]
    table = pa.Table.from_pylist(rows, schema=_SAMPLES_SCHEMA)

    def run(connection: duckdb.DuckDBPyConnection) -> int:
        _require_build(connection, build_id)
        connection.register("incoming_samples", table)
        unknown = [row[0] for row in connection.execute(query("unknown_sample_prompts")).fetchall()]
        if unknown:
            raise UnknownPrompts(f"build {build_id}: samples name prompts not in the catalog, e.g. {unknown}")
        return changed_rows(connection.execute(query("upsert_build_samples")))

    return catalog.write(run)


def build_status(catalog: Catalog, build_id: str) -> BuildStatus | None:
    """The recorded status of a build, or None if the catalog has never seen it."""
    if not catalog.path.is_file():
        return None
    row = catalog.read(lambda connection: first_row(connection.execute(query("select_build"), {"build_id": build_id})))
    return BuildStatus(row[3]) if row else None


def find_resumable_build(catalog: Catalog, dataset_name: str, config: Mapping[str, Any]) -> str | None:
    """The newest unfinished (running, failed or cancelled) build of `dataset_name` with this config."""
    if not catalog.path.is_file():
        return None
    params = {"dataset_name": dataset_name, "config_hash": config_hash(config)}
    row = catalog.read(lambda connection: first_row(connection.execute(query("select_resumable_build"), params)))
    return row[0] if row else None


def build_samples(catalog: Catalog, build_id: str) -> list[SampleOutcomeRow]:
    """Every sample of a build with its outcome (and reason), ordered by prompt and index."""

    def run(connection: duckdb.DuckDBPyConnection) -> list[SampleOutcomeRow]:
        _require_build(connection, build_id)
        rows = fetch_dicts(connection.execute(query("select_build_samples"), {"build_id": build_id}))
        return [SampleOutcomeRow.model_validate(row) for row in rows]

    return catalog.read(run)


def build_accounting(catalog: Catalog, build_id: str) -> BuildAccounting:
    """How many samples of a build are published, rejected, failed and still pending."""

    def run(connection: duckdb.DuckDBPyConnection) -> BuildAccounting:
        _require_build(connection, build_id)
        return _accounting(connection, build_id)

    return catalog.read(run)


def _accounting(connection: duckdb.DuckDBPyConnection, build_id: str) -> BuildAccounting:
    rows = connection.execute(query("build_outcome_counts"), {"build_id": build_id}).fetchall()
    return BuildAccounting(build_id=build_id, **{outcome: samples for outcome, samples in rows})


def _require_build(connection: duckdb.DuckDBPyConnection, build_id: str) -> None:
    if first_row(connection.execute(query("select_build"), {"build_id": build_id})) is None:
        raise UnknownBuild(f"no build {build_id!r} in the catalog; call record_build_start first")
