"""Read published versions: discover them, load manifests, scan splits lazily, verify checksums."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from tessy_core.publish.errors import ChecksumMismatchError, DatasetNotFoundError, InvalidNameError, PublishError
from tessy_core.publish.manifest import Manifest
from tessy_core.publish.naming import DEFAULT_BASE, MANIFEST_FILE, DatasetRef, check_dataset_name, version_dir
from tessy_core.publish.storage import Storage, StorageConfig
from tessy_core.publish.versions import version_path, visible_versions

if TYPE_CHECKING:
    import polars as pl

_HASH_CHUNK = 1 << 20


def list_datasets(base: str = DEFAULT_BASE, *, storage: StorageConfig | None = None) -> list[str]:
    """Names that have at least one visible version."""
    store = Storage(base, storage)
    return [name for name in store.list_names("") if _is_dataset_name(name) and visible_versions(store, name)]


def list_versions(base: str, name: str, *, storage: StorageConfig | None = None) -> list[int]:
    """Visible versions of `name`, oldest first; empty when the dataset does not exist."""
    return visible_versions(Storage(base, storage), check_dataset_name(name))


def read_manifest(
    base: str, name: str, version: int | None = None, *, storage: StorageConfig | None = None
) -> Manifest:
    """The manifest of `name@v<version>`, or of the latest version when `version` is None."""
    return manifest_of(Storage(base, storage), DatasetRef(check_dataset_name(name), version))


def resolve(base: str, ref: str | DatasetRef, *, storage: StorageConfig | None = None) -> Manifest:
    """The manifest `NAME` (latest) or `NAME@vN` points to."""
    return manifest_of(Storage(base, storage), _as_ref(ref))


def scan(
    base: str, ref: str | DatasetRef, split: str = "train", *, storage: StorageConfig | None = None
) -> pl.LazyFrame:
    """A lazy view of one split; nested columns keep their types."""
    store = Storage(base, storage)
    manifest = manifest_of(store, _as_ref(ref))
    entry = manifest.splits.get(split)
    if entry is None:
        raise DatasetNotFoundError(
            f"{manifest.name}@{version_dir(manifest.version)} has no split {split!r}; it has {sorted(manifest.splits)}"
        )
    urls = [store.url(version_path(manifest.name, manifest.version, file.path)) for file in entry.files]
    import polars as pl

    return pl.scan_parquet(urls, storage_options=store.polars_storage_options())


def verify(base: str, ref: str | DatasetRef, *, storage: StorageConfig | None = None) -> Manifest:
    """Recompute every file's sha256 and size; raises `ChecksumMismatchError` on the first difference."""
    store = Storage(base, storage)
    manifest = manifest_of(store, _as_ref(ref))
    for file in manifest.files:
        relative = version_path(manifest.name, manifest.version, file.path)
        digest, size = _sha256_of(store, relative)
        if digest != file.sha256 or size != file.bytes:
            raise ChecksumMismatchError(
                f"{store.url(relative)}: sha256 {digest} ({size} bytes), manifest says {file.sha256} ({file.bytes} bytes)"
            )
    return manifest


def manifest_of(store: Storage, ref: DatasetRef) -> Manifest:
    """The manifest `ref` points to in `store` (its latest version when `ref` names none)."""
    version = ref.version if ref.version is not None else _latest_version(store, ref.name)
    try:
        raw = store.read_bytes(version_path(ref.name, version, MANIFEST_FILE))
    except FileNotFoundError:
        published = ", ".join(version_dir(v) for v in visible_versions(store, ref.name)) or "none"
        raise DatasetNotFoundError(
            f"{ref.name}@{version_dir(version)} is not published under {store.base_uri}; versions: {published}"
        ) from None
    try:
        return Manifest.model_validate_json(raw)
    except ValueError as error:
        raise PublishError(f"unreadable manifest of {ref.name}@{version_dir(version)}: {error}") from error


def _latest_version(store: Storage, name: str) -> int:
    versions = visible_versions(store, name)
    if not versions:
        raise DatasetNotFoundError(f"no published version of {name!r} under {store.base_uri}")
    return versions[-1]


def _sha256_of(store: Storage, relative: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with store.open_read(relative) as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _as_ref(ref: str | DatasetRef) -> DatasetRef:
    return ref if isinstance(ref, DatasetRef) else DatasetRef.parse(ref)


def _is_dataset_name(entry: str) -> bool:
    try:
        check_dataset_name(entry)
    except InvalidNameError:
        return False
    return True
