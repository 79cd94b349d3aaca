"""Small file helpers shared by the library's local state (build workspaces, the model world cache)."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: Path, data: str, durable: bool = True) -> None:
    """Replace `path` whole. `durable` also fsyncs, so the new content survives a power cut; a
    process crash (kill -9) never leaves a half-written file either way."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("w") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not keep the half-written copy
        raise
