"""The catalog's `evaluations` table: an evaluation is data, linked to the dataset version, the base
model, the config and the code version it was measured with."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.catalog.connection import Catalog, CatalogError, changed_rows, fetch_dicts
from tessy_core.catalog.sql import query


class EvaluationRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evaluation_id: str
    dataset_name: str
    dataset_version: str
    manifest_checksum: str
    base_model: str
    base_model_path: str
    tuned_model_path: str | None = None
    config: dict[str, Any]
    config_hash: str
    code: dict[str, Any]
    eval_prompt_ids: list[str]
    status: Literal["running", "succeeded", "failed"] = "running"
    error: str | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    lineage_run_id: str | None = None
    pass_at_1_base: float | None = None
    pass_at_1_tuned: float | None = None
    style_nll_base: float | None = None
    style_nll_tuned: float | None = None
    format_ok_base: float | None = None
    format_ok_tuned: float | None = None
    results: dict[str, Any] | None = None

    @property
    def ref(self) -> str:
        return f"{self.dataset_name}@{self.dataset_version}"


_JSON = ("config", "code", "eval_prompt_ids", "results")


def record_evaluation_start(catalog: Catalog, record: EvaluationRecord) -> None:
    params = record.model_dump(include={
        "evaluation_id", "dataset_name", "dataset_version", "manifest_checksum", "base_model", "base_model_path",
        "config", "config_hash", "code", "eval_prompt_ids", "started_at", "lineage_run_id"})
    params.update({key: json.dumps(params[key], sort_keys=True) for key in _JSON if key in params})

    def run(connection: duckdb.DuckDBPyConnection) -> None:
        if not changed_rows(connection.execute(query("insert_evaluation"), params)):
            raise CatalogError(f"evaluation {record.evaluation_id} is already recorded")

    catalog.write(run)


def record_evaluation_finish(
    catalog: Catalog,
    evaluation_id: str,
    *,
    status: Literal["succeeded", "failed"],
    figures: dict[str, float | None] | None = None,
    results: dict[str, Any] | None = None,
    tuned_model_path: str | None = None,
    error: str | None = None,
) -> None:
    figures = figures or {}
    params = {
        "evaluation_id": evaluation_id, "status": status, "error": error, "finished_at": datetime.now(UTC),
        "tuned_model_path": tuned_model_path, "results": json.dumps(results, sort_keys=True) if results else None,
        **{column: figures.get(column) for column in (
            "pass_at_1_base", "pass_at_1_tuned", "style_nll_base", "style_nll_tuned", "format_ok_base",
            "format_ok_tuned")},
    }

    def run(connection: duckdb.DuckDBPyConnection) -> None:
        if not changed_rows(connection.execute(query("finish_evaluation"), params)):
            raise CatalogError(f"no evaluation {evaluation_id} in the catalog")

    catalog.write(run)


def list_evaluations(
    catalog: Catalog, dataset_name: str, dataset_version: str | None = None, status: str | None = None
) -> list[EvaluationRecord]:
    """Evaluations of a dataset (one version when given), newest first."""
    params = {"dataset_name": dataset_name, "dataset_version": dataset_version, "status": status}

    def run(connection: duckdb.DuckDBPyConnection) -> list[EvaluationRecord]:
        rows = fetch_dicts(connection.execute(query("select_evaluations"), params))
        return [EvaluationRecord.model_validate(
            {k: (json.loads(v) if k in _JSON and v is not None else v) for k, v in row.items()}) for row in rows]

    return catalog.read(run)


def latest_evaluation(catalog: Catalog, dataset_name: str, dataset_version: str) -> EvaluationRecord | None:
    found = list_evaluations(catalog, dataset_name, dataset_version, status="succeeded")
    return found[0] if found else None
