"""Entry points of the publisher subprocesses (spawned, so they must be importable)."""

from __future__ import annotations

import os
import threading
from typing import Any

from tessy_core.publish import PublishConfig, Publisher, StorageConfig
from tessy_core.publish.storage import Storage
from tests.publish.conftest import build_info, sample_rows


def synchronized_commits(barrier: Any) -> dict[str, Any]:
    """Replacements for the Storage methods that commit a version, making every publisher wait for
    the others at its first commit attempt, so that all of them try to claim the same number."""
    first_attempt = threading.local()

    def synchronized(original):
        def attempt(self: Storage, *args: Any) -> Any:
            if not getattr(first_attempt, "done", False):
                first_attempt.done = True
                barrier.wait(timeout=60)
            return original(self, *args)

        return attempt

    return {
        "rename_folder_if_absent": synchronized(Storage.rename_folder_if_absent),
        "create_exclusive": synchronized(Storage.create_exclusive),
    }


def publish_toy(base: str, build_id: str, rows: int, storage: StorageConfig | None = None) -> int:
    publisher = Publisher(base, storage)
    published = publisher.publish("toy", {"train": sample_rows(rows, prefix=build_id)}, build_info(build_id))
    return published.manifest.version


def publish_in_race(base: str, build_id: str, rows: int, barrier: Any) -> int:
    """Subprocess entry point: this process is ours, so the patch needs no undoing."""
    for method, replacement in synchronized_commits(barrier).items():
        setattr(Storage, method, replacement)
    return publish_toy(base, build_id, rows)


def publish_and_die(base: str) -> None:
    """Exit the process abruptly (no cleanup, no exception handlers) after the second shard."""
    original = Storage.write_bytes
    writes = {"count": 0}

    def write_then_die(self: Storage, relative: str, data: bytes) -> None:
        original(self, relative, data)
        writes["count"] += 1
        if writes["count"] == 2:
            os._exit(17)

    Storage.write_bytes = write_then_die
    Publisher(base, config=PublishConfig(max_rows_per_file=2)).publish(
        "toy", {"train": sample_rows(6)}, build_info("doomed")
    )
