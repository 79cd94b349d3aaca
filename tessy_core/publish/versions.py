"""Which versions of a dataset exist. A version is visible iff its `manifest.json` exists."""

from __future__ import annotations

import posixpath

from tessy_core.publish.naming import CLAIMS_DIR, MANIFEST_FILE, parse_version_dir, version_dir
from tessy_core.publish.storage import Storage


def version_path(name: str, version: int, *parts: str) -> str:
    return posixpath.join(name, version_dir(version), *parts)


def version_folders(storage: Storage, name: str) -> list[int]:
    """Every `vN` folder, complete or not (object stores can hold a partial one after a crash)."""
    numbers = (parse_version_dir(entry) for entry in storage.list_names(name))
    return sorted(number for number in numbers if number is not None)


def visible_versions(storage: Storage, name: str) -> list[int]:
    return [
        number
        for number in version_folders(storage, name)
        if storage.exists(version_path(name, number, MANIFEST_FILE))
    ]


def claimed_versions(storage: Storage, name: str) -> list[int]:
    numbers = (parse_version_dir(entry) for entry in storage.list_names(posixpath.join(name, CLAIMS_DIR)))
    return sorted(number for number in numbers if number is not None)


def latest_visible_below(storage: Storage, name: str, ceiling: int) -> int | None:
    """The parent of version `ceiling`: the newest visible version before it."""
    earlier = [number for number in visible_versions(storage, name) if number < ceiling]
    return earlier[-1] if earlier else None
