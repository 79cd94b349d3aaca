"""Versioned datasets: publish a build's splits as immutable `NAME/vN` versions (Hugging Face
Parquet layout + manifest), read and export them, and report builds as OpenLineage events."""

from tessy_core.publish.errors import (
    ChecksumMismatchError,
    DatasetNotFoundError,
    ExportError,
    InvalidNameError,
    InvalidSplitError,
    PublishError,
    StorageError,
    VersionClaimError,
    VersionExistsError,
)
from tessy_core.publish.export import EXPORT_FORMATS, ExportFormat, ExportResult, export
from tessy_core.publish.gc import collect_garbage
from tessy_core.publish.lineage import (
    LineageConfig,
    LineageDataset,
    LineageEmitter,
    new_run_id,
    version_dataset,
)
from tessy_core.publish.manifest import BuildInfo, Manifest
from tessy_core.publish.naming import DatasetRef
from tessy_core.publish.publisher import PublishConfig, PublishedVersion, Publisher
from tessy_core.publish.reader import list_datasets, list_versions, read_manifest, resolve, scan, verify
from tessy_core.publish.storage import DEFAULT_BASE, StorageConfig

__all__ = [
    "DEFAULT_BASE",
    "EXPORT_FORMATS",
    "BuildInfo",
    "ChecksumMismatchError",
    "DatasetNotFoundError",
    "DatasetRef",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "InvalidNameError",
    "InvalidSplitError",
    "LineageConfig",
    "LineageDataset",
    "LineageEmitter",
    "Manifest",
    "PublishConfig",
    "PublishError",
    "PublishedVersion",
    "Publisher",
    "StorageConfig",
    "StorageError",
    "VersionClaimError",
    "VersionExistsError",
    "collect_garbage",
    "export",
    "list_datasets",
    "list_versions",
    "new_run_id",
    "read_manifest",
    "resolve",
    "scan",
    "verify",
    "version_dataset",
]
