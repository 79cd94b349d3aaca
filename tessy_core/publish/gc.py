"""Remove what failed or crashed publishes left behind: old staging folders and, on object
stores, old claims whose version never got its manifest (with that version's partial files)."""

from __future__ import annotations

import json
import posixpath
from datetime import datetime, timedelta, timezone

from tessy_core.publish.naming import (
    DEFAULT_BASE,
    CLAIMS_DIR,
    MANIFEST_FILE,
    STAGING_DIR,
    check_dataset_name,
    parse_version_dir,
    staging_started_at,
)
from tessy_core.publish.errors import InvalidNameError
from tessy_core.publish.storage import Storage, StorageConfig
from tessy_core.publish.versions import version_path


def collect_garbage(
    base: str = DEFAULT_BASE,
    older_than_hours: float = 24.0,
    *,
    storage: StorageConfig | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Remove leftovers older than `older_than_hours`; returns the URIs removed.

    Keep the age well above the longest publish: a younger folder may belong to a live publisher.
    """
    store = Storage(base, storage)
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(hours=older_than_hours)
    removed: list[str] = []
    for name in store.list_names(""):
        try:
            check_dataset_name(name)
        except InvalidNameError:
            continue
        removed += _old_staging(store, name, cutoff)
        removed += _abandoned_claims(store, name, cutoff)
    return removed


def _old_staging(store: Storage, name: str, cutoff: datetime) -> list[str]:
    removed = []
    for entry in store.list_names(posixpath.join(name, STAGING_DIR)):
        started = staging_started_at(entry)
        if started is not None and started < cutoff:
            relative = posixpath.join(name, STAGING_DIR, entry)
            store.remove_tree(relative)
            removed.append(store.url(relative))
    return removed


def _abandoned_claims(store: Storage, name: str, cutoff: datetime) -> list[str]:
    removed = []
    for entry in store.list_names(posixpath.join(name, CLAIMS_DIR)):
        number = parse_version_dir(entry)
        claim = posixpath.join(name, CLAIMS_DIR, entry)
        if number is None or store.exists(version_path(name, number, MANIFEST_FILE)):
            continue
        if _claimed_at(store, claim) < cutoff:
            # The partial folder first: while the claim exists no publisher writes into it.
            store.remove_tree(version_path(name, number))
            store.remove_tree(claim)
            removed += [store.url(version_path(name, number)), store.url(claim)]
    return removed


def _claimed_at(store: Storage, claim: str) -> datetime:
    try:
        return datetime.fromisoformat(json.loads(store.read_bytes(claim))["claimed_at"])
    except (ValueError, KeyError, TypeError):
        # Unreadable claim: treat as new, so gc never races a publisher it cannot date.
        return datetime.now(timezone.utc)
