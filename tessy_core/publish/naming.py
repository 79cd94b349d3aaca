"""Names and paths of the on-storage layout (Hugging Face Parquet layout, one folder per version).

    NAME/vN/manifest.json                          written last: a version exists iff this exists
    NAME/vN/README.md                              dataset card (YAML front matter names the splits)
    NAME/vN/data/<split>-0000i-of-0000n.parquet
    NAME/.staging/<UTC stamp>-<build id>/          work in progress of one publisher
    NAME/.claims/vN                                object stores only: who owns version N
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from tessy_core.publish.errors import InvalidNameError

DEFAULT_BASE = "./var/datasets"  # where versions go when no base is named
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"
DATA_DIR = "data"
STAGING_DIR = ".staging"
CLAIMS_DIR = ".claims"

_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_VERSION_DIR = re.compile(r"v([1-9][0-9]*)")
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class DatasetRef:
    """`NAME` (latest version) or `NAME@vN` / `NAME@N` (that version)."""

    name: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        name, sep, version_text = text.partition("@")
        check_dataset_name(name)
        if not sep:
            return cls(name)
        version = parse_version_dir(version_text) or parse_version_dir(f"v{version_text}")
        if version is None:
            raise InvalidNameError(f"bad version in {text!r}: expected NAME@vN with N >= 1, e.g. {name}@v1")
        return cls(name, version)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{version_dir(self.version)}"


def check_dataset_name(name: str) -> str:
    if not _DATASET_NAME.fullmatch(name):
        raise InvalidNameError(
            f"bad dataset name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_split_name(split: str) -> str:
    # Hugging Face split names must be word characters; '-' would also break the shard file pattern.
    if not _SPLIT_NAME.fullmatch(split):
        raise InvalidNameError(f"bad split name {split!r}: use 1-64 letters, digits or '_'")
    return split


def version_dir(version: int) -> str:
    return f"v{version}"


def parse_version_dir(text: str) -> int | None:
    match = _VERSION_DIR.fullmatch(text)
    return int(match.group(1)) if match else None


def shard_file_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def split_file_pattern(split: str) -> str:
    """The card's `data_files` glob of a split, relative to the version folder."""
    return f"{DATA_DIR}/{split}-*.parquet"


def staging_dir_name(build_id: str, now: datetime) -> str:
    return f"{now.astimezone(timezone.utc).strftime(_STAMP_FORMAT)}-{build_id}"


def staging_started_at(dir_name: str) -> datetime | None:
    """When a staging folder was created, read from its name; None for a name we did not write."""
    stamp = dir_name.split("-", 1)[0]
    try:
        return datetime.strptime(stamp, _STAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None
