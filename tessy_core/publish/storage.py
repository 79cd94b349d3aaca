"""One base URI - a local folder or `s3://bucket/prefix` - addressed by '/'-separated relative paths."""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel, ConfigDict, Field

from tessy_core.publish.errors import StorageError



class StorageConfig(BaseModel):
    """How to reach an object store; ignored for local folders. Unset credentials fall back to
    the usual AWS sources (environment variables, ~/.aws, instance roles)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str | None = Field(None, description="S3-compatible endpoint, e.g. http://127.0.0.1:9000")
    key: str | None = None
    secret: str | None = None
    region: str | None = None
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1, description="botocore attempts per request, first one included")


class Storage:
    """File operations the publisher and the readers need, over fsspec."""

    def __init__(self, base_uri: str, config: StorageConfig | None = None) -> None:
        self.config = config or StorageConfig()
        if base_uri.startswith("s3://"):
            self.is_local = False
            self.root = base_uri.removeprefix("s3://").rstrip("/")
            if not self.root:
                raise StorageError(f"base URI {base_uri!r} names no bucket: use s3://BUCKET[/PREFIX]")
            self.fs: AbstractFileSystem = self._s3_filesystem()
            self.base_uri = f"s3://{self.root}"
        elif "://" in base_uri and not base_uri.startswith("file://"):
            raise StorageError(f"unsupported base URI {base_uri!r}: use a local folder or s3://bucket/prefix")
        else:
            self.is_local = True
            self.root = str(Path(base_uri.removeprefix("file://")).expanduser().resolve())
            self.fs = LocalFileSystem(auto_mkdir=True)
            self.base_uri = self.root

    def _s3_filesystem(self) -> AbstractFileSystem:
        import s3fs

        client_kwargs: dict[str, Any] = {}
        if self.config.region:
            client_kwargs["region_name"] = self.config.region
        return s3fs.S3FileSystem(
            key=self.config.key,
            secret=self.config.secret,
            endpoint_url=self.config.endpoint_url,
            client_kwargs=client_kwargs,
            config_kwargs={
                "connect_timeout": self.config.connect_timeout_s,
                "read_timeout": self.config.read_timeout_s,
                "retries": {"max_attempts": self.config.max_attempts, "mode": "standard"},
            },
            # Listings must be fresh: version discovery races other publishers.
            use_listings_cache=False,
            skip_instance_cache=True,
        )

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative) if relative else self.root

    def url(self, relative: str) -> str:
        """A URI other readers (polars, Hugging Face datasets) accept for `relative`."""
        return self.path(relative) if self.is_local else f"s3://{self.path(relative)}"

    def polars_storage_options(self) -> dict[str, str] | None:
        if self.is_local:
            return None
        options = {
            "aws_endpoint_url": self.config.endpoint_url,
            "aws_access_key_id": self.config.key,
            "aws_secret_access_key": self.config.secret,
            "aws_region": self.config.region,
        }
        if self.config.endpoint_url and self.config.endpoint_url.startswith("http://"):
            options["aws_allow_http"] = "true"
        return {name: value for name, value in options.items() if value is not None} or None

    @contextmanager
    def _errors(self, action: str, relative: str) -> Iterator[None]:
        """Backend failures become a `StorageError` naming the file; missing/existing stay as they are."""
        try:
            yield
        except (FileNotFoundError, FileExistsError):
            raise
        except StorageError:
            raise
        except Exception as error:  # botocore/aiohttp/OS errors: one clear type for callers
            raise StorageError(f"could not {action} {self.url(relative)}: {error}") from error

    def write_bytes(self, relative: str, data: bytes) -> None:
        with self._errors("write", relative):
            self.fs.pipe_file(self.path(relative), data)

    def create_exclusive(self, relative: str, data: bytes) -> bool:
        """Write `relative` only if it does not exist yet, atomically. False when it already existed."""
        with self._errors("create", relative):
            if self.is_local:
                return self._create_local_exclusive(self.path(relative), data)
            try:
                # S3 conditional put (If-None-Match: *): the store arbitrates concurrent creators.
                self.fs.pipe_file(self.path(relative), data, mode="create")
            except FileExistsError:
                return False
            return True

    @staticmethod
    def _create_local_exclusive(path: str, data: bytes) -> bool:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        return True

    def read_bytes(self, relative: str) -> bytes:
        with self._errors("read", relative):
            return self.fs.cat_file(self.path(relative))

    def open_read(self, relative: str) -> IO[bytes]:
        with self._errors("open", relative):
            return self.fs.open(self.path(relative), "rb")

    def exists(self, relative: str) -> bool:
        with self._errors("check", relative):
            return self.fs.exists(self.path(relative))

    def list_names(self, relative: str) -> list[str]:
        """Names of the direct children of folder `relative`; empty when it does not exist."""
        with self._errors("list", relative):
            try:
                entries = self.fs.ls(self.path(relative), detail=False)
            except FileNotFoundError:
                return []
        parent = self.path(relative).rstrip("/")
        return sorted(posixpath.basename(entry.rstrip("/")) for entry in entries if entry.rstrip("/") != parent)

    def copy(self, source: str, destination: str) -> None:
        with self._errors("copy", source):
            self.fs.copy(self.path(source), self.path(destination))

    def remove_tree(self, relative: str) -> None:
        with self._errors("remove", relative):
            try:
                self.fs.rm(self.path(relative), recursive=True)
            except FileNotFoundError:
                pass

    def rename_folder_if_absent(self, source: str, destination: str) -> bool:
        """Local only: move folder `source` to `destination` in one atomic rename; False if taken.

        rename(2) fails on a non-empty destination and replaces an empty one, which holds no
        version, so a folder becomes visible whole or not at all.
        """
        if not self.is_local:
            raise StorageError("atomic folder rename is only available on local storage")
        with self._errors("rename", source):
            os.makedirs(os.path.dirname(self.path(destination)), exist_ok=True)
            try:
                os.rename(self.path(source), self.path(destination))
            except OSError as error:
                if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    return False
                raise
            return True
