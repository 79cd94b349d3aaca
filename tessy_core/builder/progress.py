"""Build progress for people watching a build in this process (the CLI's progress bar).

Progress is not a parameter of the flow: Prefect records flow and task parameters, and a callback
is neither serializable nor meaningful there. Listeners registered here see events from every build
step that runs in this process (thread-pool shards included); steps running elsewhere (a Ray
cluster) report nothing here, and the build works the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal["planned", "shard_started", "sample", "shard_finished", "stage"]


@dataclass(frozen=True)
class BuildEvent:
    kind: EventKind
    build_id: str
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[BuildEvent], None]

_lock = threading.Lock()
_listeners: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Deliver build events to `listener` for the duration of the block."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def report(kind: EventKind, build_id: str, **data: Any) -> None:
    with _lock:
        listeners = list(_listeners)
    event = BuildEvent(kind, build_id, data)
    for listener in listeners:
        listener(event)
