"""Where a build's dataset versions are published: one interface, `VersionStore`, and its formats.

A build asks a store three things: which versions a dataset has, whether this build already
published one (a resumed build must not publish twice), and to publish a new one. Readers also
open a version's manifest. Pick the store from the build's output config and talk only to it:

    from tessy_core.publish.store import version_store

    store = version_store(config.output)
    published = store.find_build(config.dataset, build_id)        # PublishedVersion | None
    if published is None:
        published = store.publish(config.dataset, {"train": rows}, build_info)
    published.manifest.version, published.uri                       # what the catalog records

Today's one format is `hf-parquet` (`HfParquetStore`): `NAME/vN/` folders in the Hugging Face
Parquet layout on a local folder or S3, written by `Publisher`. Another table format (a lakehouse
table, say) is one class implementing `VersionStore` plus one `register_store("NAME", factory)`
call; the output config then names it in `format`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tessy_core.publish.manifest import BuildInfo, Manifest
from tessy_core.publish.naming import DEFAULT_BASE, DatasetRef, check_dataset_name
from tessy_core.publish.publisher import PublishConfig, PublishedVersion, Publisher
from tessy_core.publish.reader import manifest_of
from tessy_core.publish.storage import StorageConfig
from tessy_core.publish.versions import visible_versions
from tessy_core.registry import Registry

if TYPE_CHECKING:
    import polars as pl

HF_PARQUET = "hf-parquet"
DEFAULT_FORMAT = HF_PARQUET


class VersionStore(ABC):
    """Immutable, numbered versions (1, 2, ...) of named datasets, each described by a `Manifest`."""

    @property
    @abstractmethod
    def base_uri(self) -> str:
        """Where this store keeps its datasets (recorded with each version)."""

    @abstractmethod
    def list_versions(self, name: str) -> list[int]:
        """Published versions of `name`, oldest first; empty when the dataset does not exist."""

    @abstractmethod
    def read_manifest(self, name: str, version: int | None = None) -> Manifest:
        """The manifest of `name@v<version>`, or of the latest version when `version` is None.
        Raises `DatasetNotFoundError` when there is no such version."""

    @abstractmethod
    def publish(
        self, name: str, splits: Mapping[str, pl.DataFrame], build: BuildInfo, version: int | None = None
    ) -> PublishedVersion:
        """Publish `splits` (split name -> rows) atomically as `version`, or as the next version.
        Raises `VersionExistsError` when `version` is taken, `InvalidSplitError` for bad rows."""

    def find_build(self, name: str, build_id: str) -> PublishedVersion | None:
        """The version `build_id` published, if any (newest versions looked at first)."""
        for number in reversed(self.list_versions(name)):
            manifest = self.read_manifest(name, number)
            if manifest.build_id == build_id:
                return PublishedVersion(self.base_uri, manifest)
        return None


class HfParquetStore(VersionStore):
    """`NAME/vN/` folders in the Hugging Face Parquet layout (see `naming`), local or on S3."""

    def __init__(
        self, base: str = DEFAULT_BASE, storage: StorageConfig | None = None, config: PublishConfig | None = None
    ) -> None:
        self._publisher = Publisher(base, storage, config)

    @classmethod
    def from_output(cls, output: Any) -> HfParquetStore:
        """From a build's `OutputConfig` (base_uri, storage, max_rows_per_file)."""
        return cls(output.base_uri, output.storage, PublishConfig(max_rows_per_file=output.max_rows_per_file))

    @property
    def base_uri(self) -> str:
        return self._publisher.base_uri

    def list_versions(self, name: str) -> list[int]:
        return visible_versions(self._publisher.storage, check_dataset_name(name))

    def read_manifest(self, name: str, version: int | None = None) -> Manifest:
        return manifest_of(self._publisher.storage, DatasetRef(check_dataset_name(name), version))

    def publish(
        self, name: str, splits: Mapping[str, pl.DataFrame], build: BuildInfo, version: int | None = None
    ) -> PublishedVersion:
        return self._publisher.publish(name, splits, build, version)


# format name -> a factory taking the build's output config
StoreFactory = Callable[[Any], VersionStore]
STORES: Registry[StoreFactory] = Registry("dataset format")
register_store = STORES.register


def version_store(output: Any) -> VersionStore:
    """The store a build's `OutputConfig` asks for: its `format` (when the config has one, else
    `hf-parquet`) with its base URI and storage settings."""
    return STORES.get(getattr(output, "format", None) or DEFAULT_FORMAT)(output)


register_store(HF_PARQUET, HfParquetStore.from_output)
