"""The prompt catalog: a DuckDB file of prompts and of everything built from them.

Typical use:

    catalog = Catalog(default_catalog_path())
    ingest(catalog, ["taco.parquet"], source="taco")
    prompts = select_prompts(catalog, PromptFilter(sources=["taco"], min_tests=1, limit=1000))
"""

from tessy_core.lazy import lazy_exports

# public name -> the submodule that defines it; loaded on first use
_EXPORTS = {
    "BuildAccounting": "builds",
    "BuildConflict": "builds",
    "BuildStatus": "builds",
    "SampleOutcome": "builds",
    "SampleOutcomeRow": "builds",
    "UnknownBuild": "builds",
    "UnknownPrompts": "builds",
    "build_accounting": "builds",
    "build_samples": "builds",
    "build_status": "builds",
    "config_hash": "builds",
    "find_resumable_build": "builds",
    "record_build_finish": "builds",
    "record_build_start": "builds",
    "upsert_build_samples": "builds",
    "Catalog": "connection",
    "CatalogConfig": "connection",
    "CatalogError": "connection",
    "CatalogLocked": "connection",
    "CatalogNotFound": "connection",
    "default_catalog_path": "connection",
    "RowFormat": "formats",
    "RowRejected": "formats",
    "detect_format": "formats",
    "map_row": "formats",
    "IngestConfig": "ingestion",
    "IngestReport": "ingestion",
    "ingest": "ingestion",
    "PromptFilter": "prompts",
    "select_prompts": "prompts",
    "DatasetVersion": "registry",
    "LineageEvent": "registry",
    "ModelSpec": "registry",
    "PredictorSpec": "registry",
    "RegistryConflict": "registry",
    "get_model": "registry",
    "get_predictor": "registry",
    "lineage_events": "registry",
    "list_dataset_versions": "registry",
    "record_lineage_event": "registry",
    "register_dataset_version": "registry",
    "register_model": "registry",
    "register_predictor": "registry",
    "unfinished_lineage_runs": "registry",
    "CallTest": "schema",
    "PromptRecord": "schema",
    "StdioTest": "schema",
    "TestCase": "schema",
    "prompt_id_for": "schema",
    "CatalogStats": "stats",
    "RejectedRow": "stats",
    "catalog_stats": "stats",
    "list_rejects": "stats",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
