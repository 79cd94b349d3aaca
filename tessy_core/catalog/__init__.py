"""The prompt catalog: a DuckDB file of prompts and of everything built from them.

Typical use:

    catalog = Catalog(default_catalog_path())
    ingest(catalog, ["taco.parquet"], source="taco")
    prompts = select_prompts(catalog, PromptFilter(sources=["taco"], min_tests=1, limit=1000))
"""

from tessy_core.catalog.builds import (
    BuildAccounting,
    BuildConflict,
    BuildStatus,
    SampleOutcome,
    SampleResult,
    UnknownBuild,
    UnknownPrompts,
    build_accounting,
    build_samples,
    build_status,
    config_hash,
    find_resumable_build,
    record_build_finish,
    record_build_start,
    upsert_build_samples,
)
from tessy_core.catalog.connection import (
    Catalog,
    CatalogConfig,
    CatalogError,
    CatalogLocked,
    CatalogNotFound,
    default_catalog_path,
)
from tessy_core.catalog.formats import RowFormat, RowRejected, detect_format, map_row
from tessy_core.catalog.ingest import IngestConfig, IngestReport, ingest
from tessy_core.catalog.prompts import PromptFilter, select_prompts
from tessy_core.catalog.registry import (
    DatasetVersion,
    LineageEvent,
    ModelSpec,
    PredictorSpec,
    RegistryConflict,
    get_model,
    get_predictor,
    lineage_events,
    list_dataset_versions,
    record_lineage_event,
    register_dataset_version,
    register_model,
    register_predictor,
    unfinished_lineage_runs,
)
from tessy_core.catalog.schema import CallTest, PromptRecord, StdioTest, TestCase, prompt_id_for
from tessy_core.catalog.stats import CatalogStats, RejectedRow, catalog_stats, list_rejects

__all__ = [
    "BuildAccounting",
    "BuildConflict",
    "BuildStatus",
    "CallTest",
    "Catalog",
    "CatalogConfig",
    "CatalogError",
    "CatalogLocked",
    "CatalogNotFound",
    "CatalogStats",
    "DatasetVersion",
    "IngestConfig",
    "IngestReport",
    "LineageEvent",
    "ModelSpec",
    "PredictorSpec",
    "PromptFilter",
    "PromptRecord",
    "RegistryConflict",
    "RejectedRow",
    "RowFormat",
    "RowRejected",
    "SampleOutcome",
    "SampleResult",
    "StdioTest",
    "TestCase",
    "UnknownBuild",
    "UnknownPrompts",
    "build_accounting",
    "build_samples",
    "build_status",
    "catalog_stats",
    "config_hash",
    "default_catalog_path",
    "detect_format",
    "find_resumable_build",
    "get_model",
    "get_predictor",
    "ingest",
    "lineage_events",
    "list_dataset_versions",
    "list_rejects",
    "map_row",
    "prompt_id_for",
    "record_build_finish",
    "record_build_start",
    "record_lineage_event",
    "register_dataset_version",
    "register_model",
    "register_predictor",
    "select_prompts",
    "unfinished_lineage_runs",
    "upsert_build_samples",
]
