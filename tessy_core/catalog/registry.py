"""Registries of what builds are made from and what they produce: models, boundary predictors,
dataset versions and lineage events.

Registering is idempotent: the same entry again is a no-op (safe on retries), while the same key
with different content raises `RegistryConflict`, because a name must keep meaning one artifact.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.catalog.connection import Catalog, CatalogError, changed_rows, fetch_dicts
from tessy_core.catalog.sql import query

SpecT = TypeVar("SpecT", bound=BaseModel)


class RegistryConflict(CatalogError):
    pass


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Spec):
    name: str = Field(min_length=1)
    family: str = Field(min_length=1)
    path_or_hf_id: str = Field(min_length=1)
    revision: str | None = None
    tokenizer: str | None = Field(None, description="tokenizer path or hub id when not the model's own")


class PredictorSpec(_Spec):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    path: str = Field(min_length=1)
    role: Literal["teacher", "student"]
    base_model: str = Field(min_length=1)
    metrics: dict[str, float] = Field(default_factory=dict)


class DatasetVersion(_Spec):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    uri: str = Field(min_length=1)
    manifest_checksum: str = Field(min_length=1)
    row_counts: dict[str, int] = Field(description="split -> rows")
    parent_version: str | None = None
    build_id: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class LineageEvent(_Spec):
    """One OpenLineage-style run event; `payload` keeps the full event as it was emitted."""

    event_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    run_id: str = Field(min_length=1)
    event_type: Literal["START", "RUNNING", "COMPLETE", "FAIL", "ABORT", "OTHER"]
    event_time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    job_name: str = Field(min_length=1)
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)


def register_model(catalog: Catalog, model: ModelSpec) -> bool:
    """Record a model; True if new, False if already registered identically."""
    params = {**model.model_dump(), "registered_at": datetime.now(UTC)}
    return _register(catalog, "model", "insert_model", "select_model", params, model, ModelSpec)


def register_predictor(catalog: Catalog, predictor: PredictorSpec) -> bool:
    """Record a boundary predictor version; True if new, False if already registered identically."""
    params = {
        **predictor.model_dump(),
        "metrics": json.dumps(predictor.metrics, sort_keys=True),
        "registered_at": datetime.now(UTC),
    }
    return _register(catalog, "predictor", "insert_predictor", "select_predictor", params, predictor, PredictorSpec)


def register_dataset_version(catalog: Catalog, version: DatasetVersion) -> bool:
    """Record a published dataset version; True if new, False if already registered identically."""
    params = {**version.model_dump(), "row_counts": json.dumps(version.row_counts, sort_keys=True)}

    def run(connection: duckdb.DuckDBPyConnection) -> bool:
        inserted = changed_rows(connection.execute(query("insert_dataset_version"), params))
        if inserted:
            return True
        (existing,) = _dataset_versions(connection, version.name, version.version)
        ignore = {"created_at"}
        if existing.model_dump(exclude=ignore) != version.model_dump(exclude=ignore):
            raise RegistryConflict(
                f"dataset {version.name} version {version.version} is already registered with other "
                f"content (uri {existing.uri}, checksum {existing.manifest_checksum}); publish a new version"
            )
        return False

    return catalog.write(run)


def list_dataset_versions(catalog: Catalog, name: str) -> list[DatasetVersion]:
    """All versions of a dataset, oldest first."""
    return catalog.read(lambda connection: _dataset_versions(connection, name, None))


def get_model(catalog: Catalog, name: str) -> ModelSpec | None:
    return catalog.read(lambda connection: _select_one(connection, "select_model", {"name": name}, ModelSpec))


def get_predictor(catalog: Catalog, name: str, version: str) -> PredictorSpec | None:
    params = {"name": name, "version": version}
    return catalog.read(lambda connection: _select_one(connection, "select_predictor", params, PredictorSpec))


def record_lineage_event(catalog: Catalog, event: LineageEvent) -> bool:
    """Store a lineage event; True if new, False if this event_id was already stored."""
    params = {
        **event.model_dump(),
        "inputs": json.dumps(event.inputs),
        "outputs": json.dumps(event.outputs),
        "payload": json.dumps(event.payload, sort_keys=True, default=str),
    }

    def run(connection: duckdb.DuckDBPyConnection) -> bool:
        inserted = changed_rows(connection.execute(query("insert_lineage_event"), params))
        return bool(inserted)

    return catalog.write(run)


def lineage_events(catalog: Catalog, run_id: str) -> list[LineageEvent]:
    """The events of one run, in time order."""

    def run(connection: duckdb.DuckDBPyConnection) -> list[LineageEvent]:
        cursor = connection.execute(query("select_lineage_events"), {"run_id": run_id})
        return [LineageEvent.model_validate(_decode_json(row)) for row in fetch_dicts(cursor)]

    return catalog.read(run)


def unfinished_lineage_runs(catalog: Catalog, job_name: str, build_id: str) -> list[str]:
    """Run ids of `build_id` with a START and no COMPLETE, FAIL or ABORT (killed runs)."""
    params = {"job_name": job_name, "build_id": build_id}
    return catalog.read(
        lambda connection: [row["run_id"] for row in fetch_dicts(connection.execute(query("unfinished_lineage_runs"), params))]
    )


def _register(
    catalog: Catalog,
    kind: str,
    insert_sql: str,
    select_sql: str,
    params: dict[str, Any],
    spec: SpecT,
    spec_type: type[SpecT],
) -> bool:
    key_params = {key: params[key] for key in ("name", "version") if key in params}

    def run(connection: duckdb.DuckDBPyConnection) -> bool:
        inserted = changed_rows(connection.execute(query(insert_sql), params))
        if inserted:
            return True
        existing = _select_one(connection, select_sql, key_params, spec_type)
        if existing != spec:
            key = " ".join(str(value) for value in key_params.values())
            raise RegistryConflict(
                f"{kind} {key} is already registered differently: {existing!r}; register it under a new "
                f"{'version' if 'version' in key_params else 'name'}"
            )
        return False

    return catalog.write(run)


def _select_one(
    connection: duckdb.DuckDBPyConnection, select_sql: str, params: dict[str, Any], spec_type: type[SpecT]
) -> SpecT | None:
    rows = fetch_dicts(connection.execute(query(select_sql), params))
    return spec_type.model_validate(_decode_json(rows[0])) if rows else None


def _dataset_versions(
    connection: duckdb.DuckDBPyConnection, name: str, version: str | None
) -> list[DatasetVersion]:
    cursor = connection.execute(query("select_dataset_versions"), {"name": name, "version": version})
    return [DatasetVersion.model_validate(_decode_json(row)) for row in fetch_dicts(cursor)]


_JSON_COLUMNS = frozenset({"metrics", "row_counts", "inputs", "outputs", "payload"})


def _decode_json(row: dict[str, Any]) -> dict[str, Any]:
    return {key: json.loads(value) if key in _JSON_COLUMNS else value for key, value in row.items()}
