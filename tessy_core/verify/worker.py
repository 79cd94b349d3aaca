"""Host side of one zygote process: start, request/reply with a deadline, restart."""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from tessy_core.verify import _zygote
from tessy_core.verify.config import SandboxConfig
from tessy_core.verify.errors import SandboxUnavailable, ZygoteFailed

ZYGOTE_SCRIPT = Path(_zygote.__file__)
# The zygote (and so every program) starts from this environment, never from the host's.
ZYGOTE_ENV = {"PATH": _zygote.SANDBOX_PATH, "LANG": "C.UTF-8"}
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 2.0
_HEADER_SIZE = 4


class IsolationReport(BaseModel):
    """Which isolation layers a zygote established."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network_namespace: bool
    mount_namespace: bool
    private_tmp: bool
    readonly_root: bool
    uid_switch: bool

    def missing(self) -> list[str]:
        return [name for name, held in self.model_dump().items() if not held]


class UidSlot:
    """An unprivileged uid owned by one worker, claimed across processes with a file lock.

    Each concurrently running program gets its own uid so that RLIMIT_NPROC and the final
    kill-everything-of-this-uid sweep cannot touch another program.
    """

    def __init__(self, uid: int, lock_file: IO[bytes]) -> None:
        self.uid = uid
        self._lock_file = lock_file

    @classmethod
    def claim(cls, config: SandboxConfig) -> UidSlot:
        lock_dir = Path(tempfile.gettempdir()) / "tessy-sandbox-uids"
        lock_dir.mkdir(mode=0o755, exist_ok=True)
        for uid in range(config.uid_base, config.uid_base + config.uid_slots):
            lock_file = open(lock_dir / f"{uid}.lock", "ab")  # noqa: SIM115 - held for the slot's life
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock_file.close()
                continue
            return cls(uid, lock_file)
        raise SandboxUnavailable(
            f"all {config.uid_slots} sandbox uids from {config.uid_base} are in use; "
            "raise uid_slots or stop other sandboxes")

    def release(self) -> None:
        self._lock_file.close()


class ZygoteWorker:
    """One zygote process. Not thread-safe: the pool hands a worker to one thread at a time."""

    def __init__(self, config: SandboxConfig, uid: int) -> None:
        self._config = config
        self._uid = uid
        self._process: subprocess.Popen[bytes] | None = None
        self.isolation: IsolationReport | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> IsolationReport:
        settings = {"uid": self._uid, "max_output_bytes": self._config.max_output_bytes,
                    "scratch_mb": self._config.scratch_mb}
        python = self._config.python_executable or sys.executable
        self._process = subprocess.Popen(
            [python, "-I", str(ZYGOTE_SCRIPT), json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=ZYGOTE_ENV, bufsize=0,
            start_new_session=True, cwd="/",
        )
        try:
            hello = self._read_reply(time.monotonic() + STARTUP_TIMEOUT_S)
        except ZygoteFailed as exc:
            self.stop()
            raise SandboxUnavailable(f"sandbox worker did not start: {exc}") from exc
        self.isolation = IsolationReport(**hello["isolation"])
        return self.isolation

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def restart(self) -> IsolationReport:
        if self._process is not None:
            self._process.kill()
        self.stop()
        return self.start()

    def request(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and wait for its reply; any failure means this zygote must be replaced."""
        if self._process is None or self._process.stdin is None:
            raise ZygoteFailed("sandbox worker is not running")
        try:
            self._process.stdin.write(_zygote.encode_message(message))
        except (BrokenPipeError, ValueError) as exc:
            raise ZygoteFailed(f"sandbox worker {self.pid} is gone") from exc
        reply = self._read_reply(time.monotonic() + timeout_s)
        if not reply.get("ok"):
            raise ZygoteFailed(f"sandbox worker {self.pid} failed: {reply.get('error')}")
        return reply

    def _read_reply(self, deadline: float) -> dict[str, Any]:
        header = self._read_exact(_HEADER_SIZE, deadline)
        body = self._read_exact(int.from_bytes(header, "big"), deadline)
        try:
            return _zygote.decode_body(body)
        except ValueError as exc:
            raise ZygoteFailed(f"sandbox worker {self.pid} sent a malformed reply") from exc

    def _read_exact(self, size: int, deadline: float) -> bytes:
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        chunks: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise ZygoteFailed(f"sandbox worker {self.pid} did not answer in time")
            chunk = os.read(fd, size)
            if not chunk:
                raise ZygoteFailed(f"sandbox worker {self.pid} exited (code {self._process.poll()})")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)
