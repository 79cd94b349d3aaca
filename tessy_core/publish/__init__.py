"""Versioned datasets: publish a build's splits as immutable `NAME/vN` versions (Hugging Face
Parquet layout + manifest), read and export them, and report builds as OpenLineage events.

A build talks to its published datasets through `store.version_store(config.output)` (a
`VersionStore`); `Publisher` and the reader functions are the Hugging Face Parquet format's parts."""

from tessy_core.lazy import lazy_exports

# public name -> the submodule that defines it; loaded on first use
_EXPORTS = {
    "ChecksumMismatchError": "errors",
    "DatasetNotFoundError": "errors",
    "ExportError": "errors",
    "InvalidNameError": "errors",
    "InvalidSplitError": "errors",
    "PublishError": "errors",
    "StorageError": "errors",
    "VersionClaimError": "errors",
    "VersionExistsError": "errors",
    "EXPORT_FORMATS": "exporter",
    "ExportFormat": "exporter",
    "ExportResult": "exporter",
    "export": "exporter",
    "collect_garbage": "gc",
    "LineageConfig": "lineage",
    "LineageDataset": "lineage",
    "LineageEmitter": "lineage",
    "new_run_id": "lineage",
    "version_dataset": "lineage",
    "BuildInfo": "manifest",
    "Manifest": "manifest",
    "DatasetRef": "naming",
    "PublishConfig": "publisher",
    "PublishedVersion": "publisher",
    "Publisher": "publisher",
    "list_datasets": "reader",
    "list_versions": "reader",
    "read_manifest": "reader",
    "resolve": "reader",
    "scan": "reader",
    "verify": "reader",
    "DEFAULT_BASE": "naming",
    "StorageConfig": "storage",
    "HfParquetStore": "store",
    "VersionStore": "store",
    "register_store": "store",
    "version_store": "store",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
