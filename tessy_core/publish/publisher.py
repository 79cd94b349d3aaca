"""Publish a build's splits as a new immutable version: `NAME/vN/` in the Hugging Face Parquet layout.

Atomicity: every file is first written under `NAME/.staging/<stamp>-<build>-<nonce>/`. Then
- local folders: the staging folder, manifest included, is renamed to `NAME/vN` in one rename(2),
  which fails if another publisher took `vN` first (we then try `vN+1`);
- object stores: `NAME/.claims/vN` is created with a conditional put (If-None-Match: *), so exactly
  one publisher owns `vN`; it copies the staged files into `NAME/vN/` and writes `manifest.json`
  last. Readers only see versions whose manifest exists.
A failure leaves no visible version; leftovers are removed on the spot when possible, else by `gc`.
On object stores a version number whose publish failed after its claim stays taken (until `gc`),
so version numbers always increase but may skip.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import posixpath
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.publish.card import render_card
from tessy_core.publish.errors import (
    InvalidSplitError,
    PublishError,
    VersionClaimError,
    VersionExistsError,
)
from tessy_core.publish.manifest import BuildInfo, FileEntry, Manifest, SplitEntry, current_code_version
from tessy_core.publish.naming import (
    DEFAULT_BASE,
    CARD_FILE,
    CLAIMS_DIR,
    DATA_DIR,
    MANIFEST_FILE,
    STAGING_DIR,
    DatasetRef,
    check_dataset_name,
    check_split_name,
    shard_file_name,
    staging_dir_name,
    version_dir,
)
from tessy_core.publish.storage import Storage, StorageConfig
from tessy_core.publish.versions import (
    claimed_versions,
    latest_visible_below,
    version_folders,
    version_path,
)

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("sample_id", "prompt_id", "messages")


class PublishConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rows_per_file: int = Field(50_000, ge=1, description="rows per Parquet shard")
    compression: Literal["zstd", "snappy", "gzip", "lz4", "uncompressed"] = "zstd"
    max_claim_attempts: int = Field(100, ge=1, description="version numbers tried before giving up")


@dataclass(frozen=True)
class PublishedVersion:
    base_uri: str
    manifest: Manifest

    @property
    def ref(self) -> DatasetRef:
        return DatasetRef(self.manifest.name, self.manifest.version)

    @property
    def uri(self) -> str:
        """The version folder, loadable with `datasets.load_dataset(uri)`."""
        return posixpath.join(self.base_uri, self.manifest.name, version_dir(self.manifest.version))


ManifestFactory = Callable[[int], Manifest]


class Publisher:
    """Writes versions of named datasets under one base URI (local folder or `s3://bucket/prefix`)."""

    def __init__(
        self,
        base: str = DEFAULT_BASE,
        storage: StorageConfig | None = None,
        config: PublishConfig | None = None,
    ) -> None:
        self.storage = Storage(base, storage)
        self.config = config or PublishConfig()

    @property
    def base_uri(self) -> str:
        return self.storage.base_uri

    def publish(
        self,
        name: str,
        splits: Mapping[str, pl.DataFrame],
        build: BuildInfo,
        version: int | None = None,
    ) -> PublishedVersion:
        """Publish `splits` (split name -> rows) as `name@v<version>`, or as the next version.

        Raises `VersionExistsError` if `version` is given and taken, `InvalidSplitError` for bad
        rows, `StorageError` when the store fails (nothing is visible then).
        """
        check_dataset_name(name)
        validate_splits(splits)
        if version is not None:
            if version < 1:
                raise PublishError(f"version must be >= 1, got {version}")
            self._refuse_taken(name, version)
        staging = posixpath.join(
            name, STAGING_DIR, staging_dir_name(f"{build.build_id}-{uuid.uuid4().hex[:8]}", datetime.now(timezone.utc))
        )
        try:
            split_entries = {split: self._stage_split(staging, split, frame) for split, frame in splits.items()}
            manifest_for = self._manifest_factory(name, build, split_entries)
            if self.storage.is_local:
                manifest = self._commit_by_rename(name, staging, manifest_for, version)
            else:
                manifest = self._commit_by_claim(name, staging, manifest_for, version)
        except BaseException:
            self._remove_quietly(staging)
            raise
        self._remove_quietly(staging)
        log.info("published %s@%s (%s)", name, version_dir(manifest.version), manifest.row_counts)
        return PublishedVersion(self.base_uri, manifest)

    def _refuse_taken(self, name: str, version: int) -> None:
        taken = version in version_folders(self.storage, name)
        if not self.storage.is_local:
            taken = taken or version in claimed_versions(self.storage, name)
        if taken:
            raise VersionExistsError(f"{name}@{version_dir(version)} already exists; versions are immutable")

    def _stage_split(self, staging: str, split: str, frame: pl.DataFrame) -> SplitEntry:
        shard_count = max(1, math.ceil(frame.height / self.config.max_rows_per_file))
        files = []
        for index in range(shard_count):
            shard = frame.slice(index * self.config.max_rows_per_file, self.config.max_rows_per_file)
            relative = posixpath.join(DATA_DIR, shard_file_name(split, index, shard_count))
            data = self._parquet_bytes(shard)
            self.storage.write_bytes(posixpath.join(staging, relative), data)
            files.append(
                FileEntry(path=relative, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), rows=shard.height)
            )
        columns = {column: str(dtype) for column, dtype in frame.schema.items()}
        return SplitEntry(rows=frame.height, columns=columns, files=files)

    def _parquet_bytes(self, frame: pl.DataFrame) -> bytes:
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression=self.config.compression, statistics=True)
        return buffer.getvalue()

    def _manifest_factory(
        self, name: str, build: BuildInfo, split_entries: dict[str, SplitEntry]
    ) -> ManifestFactory:
        code = current_code_version()

        def manifest_for(version: int) -> Manifest:
            return Manifest(
                name=name,
                version=version,
                parent_version=latest_visible_below(self.storage, name, version),
                build_id=build.build_id,
                created_at=datetime.now(timezone.utc),
                splits=split_entries,
                build_config=build.build_config,
                models=build.models,
                predictors=build.predictors,
                validation=build.validation,
                figures=build.figures,
                description=build.description,
                code=code,
            )

        return manifest_for

    def _commit_by_rename(
        self, name: str, staging: str, manifest_for: ManifestFactory, requested: int | None
    ) -> Manifest:
        for number in self._candidate_numbers(requested, lambda: version_folders(self.storage, name)):
            manifest = manifest_for(number)
            self.storage.write_bytes(posixpath.join(staging, CARD_FILE), render_card(manifest).encode())
            self.storage.write_bytes(posixpath.join(staging, MANIFEST_FILE), manifest.to_json_bytes())
            if self.storage.rename_folder_if_absent(staging, version_path(name, number)):
                return manifest
        raise self._claim_failure(name, requested)

    def _commit_by_claim(
        self, name: str, staging: str, manifest_for: ManifestFactory, requested: int | None
    ) -> Manifest:
        number = self._claim(name, requested)
        try:
            manifest = manifest_for(number)
            for file in manifest.files:
                self.storage.copy(posixpath.join(staging, file.path), version_path(name, number, file.path))
            self.storage.write_bytes(version_path(name, number, CARD_FILE), render_card(manifest).encode())
            if not self.storage.create_exclusive(version_path(name, number, MANIFEST_FILE), manifest.to_json_bytes()):
                raise PublishError(f"{name}@{version_dir(number)} got a manifest from another writer; claim lost")
        except BaseException:
            self._release_claim(name, number)
            raise
        return manifest

    def _claim(self, name: str, requested: int | None) -> int:
        def taken() -> list[int]:
            return claimed_versions(self.storage, name) + version_folders(self.storage, name)

        for number in self._candidate_numbers(requested, taken):
            claim = json.dumps({"claimed_at": datetime.now(timezone.utc).isoformat()}).encode()
            if self.storage.create_exclusive(posixpath.join(name, CLAIMS_DIR, version_dir(number)), claim):
                return number
        raise self._claim_failure(name, requested)

    def _candidate_numbers(self, requested: int | None, taken: Callable[[], list[int]]) -> Iterator[int]:
        """The requested number once, or the next free number (listed again) per attempt."""
        if requested is not None:
            yield requested
            return
        for _ in range(self.config.max_claim_attempts):
            yield max(taken(), default=0) + 1

    def _claim_failure(self, name: str, requested: int | None) -> PublishError:
        if requested is not None:
            return VersionExistsError(f"{name}@{version_dir(requested)} already exists; versions are immutable")
        return VersionClaimError(
            f"no version of {name!r} could be claimed after {self.config.max_claim_attempts} attempts "
            "(many concurrent publishers?); retry the publish"
        )

    def _release_claim(self, name: str, number: int) -> None:
        """Undo a failed object-store publish: drop the partial folder, then the claim.

        The claim is kept when the folder could not be removed, so no later publisher writes into
        a folder that still holds our files; `gc` removes both later.
        """
        if self.storage.exists(version_path(name, number, MANIFEST_FILE)):
            return
        try:
            self.storage.remove_tree(version_path(name, number))
            self.storage.remove_tree(posixpath.join(name, CLAIMS_DIR, version_dir(number)))
        except Exception as error:
            log.warning("left %s@%s partial files for gc: %s", name, version_dir(number), error)

    def _remove_quietly(self, relative: str) -> None:
        try:
            self.storage.remove_tree(relative)
        except Exception as error:
            log.warning("left staging folder %s for gc: %s", self.storage.url(relative), error)


def validate_splits(splits: Mapping[str, pl.DataFrame]) -> None:
    """The few things every consumer relies on; other columns are carried as they are."""
    if not splits:
        raise InvalidSplitError("nothing to publish: give at least one split")
    for split, frame in splits.items():
        check_split_name(split)
        if not isinstance(frame, pl.DataFrame):
            raise InvalidSplitError(f"split {split!r}: expected a polars DataFrame, got {type(frame).__name__}")
        missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
        if missing:
            raise InvalidSplitError(f"split {split!r} lacks required column(s) {missing}")
        _check_messages_type(split, frame.schema["messages"])
    _check_sample_ids(splits)


def _check_messages_type(split: str, dtype: pl.DataType) -> None:
    inner = dtype.inner if isinstance(dtype, pl.List) else None
    fields = {field.name for field in inner.fields} if isinstance(inner, pl.Struct) else set()
    if not {"role", "content"} <= fields:
        raise InvalidSplitError(
            f"split {split!r}: `messages` must be a list of struct{{role, content}}, got {dtype}"
        )


def _check_sample_ids(splits: Mapping[str, pl.DataFrame]) -> None:
    """`sample_id` is the row's identity across the whole version, all splits together."""
    ids = pl.concat(
        [
            frame.select(pl.col("sample_id").cast(pl.String), pl.lit(split).alias("split"))
            for split, frame in splits.items()
        ]
    )
    if missing := ids.get_column("sample_id").null_count():
        raise InvalidSplitError(f"{missing} row(s) have no sample_id")
    duplicated = ids.filter(pl.col("sample_id").is_duplicated()).sort("sample_id").head(6)
    if duplicated.height:
        examples = ", ".join(f"{row['sample_id']!r} in {row['split']}" for row in duplicated.iter_rows(named=True))
        raise InvalidSplitError(f"sample_id must be unique across splits; duplicates: {examples}")
