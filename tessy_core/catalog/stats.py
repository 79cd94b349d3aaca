"""What the catalog holds, and the rows it refused, for reports and the CLI."""

from __future__ import annotations

from datetime import datetime

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.catalog.connection import Catalog, fetch_dicts
from tessy_core.catalog.sql import query


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceStats(_Report):
    source: str
    prompts: int
    with_tests: int
    with_call_tests: int


class CatalogStats(_Report):
    prompts: int
    rejects: int
    models: int
    predictors: int
    builds: int
    dataset_versions: int
    lineage_events: int
    sources: list[SourceStats] = Field(default_factory=list)
    rejects_by_reason: dict[str, int] = Field(default_factory=dict)


class RejectedRow(_Report):
    source: str
    source_file: str
    line_no: int
    reason_code: str
    reason: str
    row_format: str | None
    raw_text: str
    raw_chars: int
    rejected_at: datetime


def catalog_stats(catalog: Catalog) -> CatalogStats:
    def run(connection: duckdb.DuckDBPyConnection) -> CatalogStats:
        (totals,) = fetch_dicts(connection.execute(query("stats_totals")))
        sources = fetch_dicts(connection.execute(query("stats_prompts_by_source")))
        reasons = connection.execute(query("stats_rejects_by_reason")).fetchall()
        return CatalogStats(
            **totals,
            sources=[SourceStats(**row) for row in sources],
            rejects_by_reason=dict(reasons),
        )

    return catalog.read(run)


def list_rejects(catalog: Catalog, limit: int = 20, source: str | None = None) -> list[RejectedRow]:
    """The most recently rejected rows, newest first."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    params = {"limit": limit, "source": source}
    return catalog.read(
        lambda connection: [RejectedRow(**row) for row in fetch_dicts(connection.execute(query("list_rejects"), params))]
    )
