"""Small file helpers shared by the library's local state (build workspaces, the model world cache,
`tessy generate` outputs)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


def write_atomic(path: Path, data: str, durable: bool = True, mode: int | None = None) -> None:
    """Replace `path` whole. `durable` also fsyncs, so the new content survives a power cut; a
    process crash (kill -9) never leaves a half-written file either way. `mode` (e.g. 0o600 for
    files holding hidden tests) is set before any byte is written; None: the umask decides."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o666 if mode is None else mode)
        if mode is not None:
            os.fchmod(fd, mode)  # exact, whatever the umask
        with open(fd, "w") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not keep the half-written copy
        raise


def resume_jsonl(path: Path) -> list[dict]:
    """The records of an append-only JSONL file, before appending more (empty when it does not exist).

    Writers append one whole line per record, so a crash mid-write can only leave a torn last line
    (no newline): it is cut off here, so the next append starts on a fresh line and the record it
    held is simply produced again."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        os.truncate(path, len(data))
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]

