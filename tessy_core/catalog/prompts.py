"""Select prompts from the catalog with a typed filter (callers never write SQL)."""

from __future__ import annotations

from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.catalog.builds import SampleOutcome
from tessy_core.catalog.connection import Catalog, fetch_dicts
from tessy_core.catalog.schema import TESTS_ADAPTER, PromptRecord
from tessy_core.catalog.sql import query


class PromptFilter(BaseModel):
    """Which prompts to select. Every field left as None places no constraint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_ids: list[str] | None = None
    sources: list[str] | None = None
    tags_any: list[str] | None = Field(None, description="prompts having at least one of these tags")
    difficulties: list[str] | None = None
    languages: list[str] | None = None
    test_kinds: list[Literal["none", "stdio", "call", "mixed"]] | None = None
    min_tests: int | None = Field(None, ge=0)
    exclude_dataset: str | None = Field(
        None, description="skip prompts that a build of this dataset already has a sample for"
    )
    # Failed samples are not counted as used, so a scheduled build offers their prompts again.
    exclude_outcomes: list[SampleOutcome] = Field(
        default_factory=lambda: [SampleOutcome.PUBLISHED, SampleOutcome.PENDING, SampleOutcome.REJECTED],
        min_length=1,
    )
    limit: int | None = Field(None, gt=0)


def select_prompts(catalog: Catalog, prompt_filter: PromptFilter | None = None) -> list[PromptRecord]:
    """Matching prompts, ordered by prompt_id."""
    params = (prompt_filter or PromptFilter()).model_dump(mode="json")

    def run(connection: duckdb.DuckDBPyConnection) -> list[PromptRecord]:
        cursor = connection.execute(query("select_prompts"), params)
        return [_record_from_row(row) for row in fetch_dicts(cursor)]

    return catalog.read(run)


def _record_from_row(row: dict[str, Any]) -> PromptRecord:
    return PromptRecord(**{**row, "tests": TESTS_ADAPTER.validate_json(row["tests"])})
