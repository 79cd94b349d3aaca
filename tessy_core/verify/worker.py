"""Host side of one zygote: start it, run executions through it, restart it.

The host creates each execution's pipes, hands the program's ends to the zygote (which forks
without reading them), writes the request and the test's input itself and reads the output itself:
program bytes and test data go straight between the host and the program process.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from tessy_core.verify import _zygote, cgroups
from tessy_core.verify.config import SandboxConfig
from tessy_core.verify.errors import SandboxUnavailable, ZygoteFailed

ZYGOTE_SCRIPT = Path(_zygote.__file__)
# The zygote (and so every program) starts from this environment, never from the host's.
ZYGOTE_ENV = {"PATH": _zygote.SANDBOX_PATH, "LANG": "C.UTF-8"}
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 2.0
DRAIN_TIMEOUT_S = 2.0
_CHUNK = 1 << 16
_STDERR_KEEP_BYTES = 1 << 16
_MAX_REPLY = 1 << 16


class IsolationReport(BaseModel):
    """Which isolation layers a zygote established."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network_namespace: bool
    mount_namespace: bool
    minimal_root: bool
    pid_namespace: bool
    ipc_namespace: bool
    uts_namespace: bool
    uid_switch: bool
    cgroups: bool
    seccomp: bool

    def missing(self) -> list[str]:
        return [name for name, held in self.model_dump().items() if not held]


class UidSlot:
    """An unprivileged uid owned by one worker, claimed across processes with a file lock, and the
    worker's cgroup named after it.

    Each concurrently running program gets its own uid so that RLIMIT_NPROC and the cgroup
    cannot touch another program.
    """

    def __init__(self, uid: int, lock_file: IO[bytes]) -> None:
        self.uid = uid
        self._lock_file = lock_file
        self.cgroup: cgroups.CgroupSlot | None = None

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
            slot = cls(uid, lock_file)
            if os.geteuid() == 0:
                try:
                    slot.cgroup = cgroups.claim(uid)
                except BaseException:
                    slot.release()
                    raise
            return slot
        raise SandboxUnavailable(
            f"all {config.uid_slots} sandbox uids from {config.uid_base} are in use; "
            "raise uid_slots or stop other sandboxes")

    def release(self) -> None:
        if self.cgroup is not None:
            cgroups.release(self.cgroup)
            self.cgroup = None
        self._lock_file.close()


def base_interpreter() -> str:
    """The interpreter behind this one, outside any virtual environment (programs get its stdlib only)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def runtime_paths(python: str) -> list[str]:
    """Directories the sandbox's root must hold for `python` to run: its installation prefix."""
    real = Path(os.path.realpath(python))
    prefix = real.parent.parent if real.parent.name == "bin" else real.parent
    return [str(prefix)]


@dataclass
class _Stream:
    """Output read from one pipe: at most `keep` bytes kept, the rest counted."""

    fd: int
    keep: int
    chunks: list[bytes] = field(default_factory=list)
    kept: int = 0
    total: int = 0
    closed: bool = False

    def read(self) -> None:
        try:
            chunk = os.read(self.fd, _CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            self.closed = True
            return
        self.total += len(chunk)
        if self.kept < self.keep:
            piece = chunk[: self.keep - self.kept]
            self.chunks.append(piece)
            self.kept += len(piece)

    def data(self) -> bytes:
        return b"".join(self.chunks)


@dataclass
class _Feed:
    """Bytes to write into one pipe as it accepts them."""

    fd: int
    pending: memoryview

    def write(self) -> None:
        try:
            self.pending = self.pending[os.write(self.fd, self.pending[:_CHUNK]):]
        except BlockingIOError:
            return
        except BrokenPipeError:
            self.pending = self.pending[:0]  # the program closed its end; the rest is not needed


def _close_quietly(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class ZygoteWorker:
    """One zygote process. Not thread-safe: the pool hands a worker to one thread at a time."""

    def __init__(self, config: SandboxConfig, slot: UidSlot) -> None:
        self._config = config
        self._slot = slot
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self.isolation: IsolationReport | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> IsolationReport:
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the zygote process without waiting for it (see `wait_ready`): a pool starts all at once."""
        python = self._config.python_executable or base_interpreter()
        host_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        settings = {
            "uid": self._slot.uid, "scratch_mb": self._config.scratch_mb, "control_fd": zygote_end.fileno(),
            "cgroups": self._slot.cgroup.spec() if self._slot.cgroup is not None else None,
            "runtime_paths": runtime_paths(python),
        }
        try:
            self._process = subprocess.Popen(
                [python, "-I", "-S", str(ZYGOTE_SCRIPT), json.dumps(settings)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ZYGOTE_ENV,
                pass_fds=[zygote_end.fileno()], start_new_session=True, cwd="/")
        except BaseException:
            host_end.close()
            raise
        finally:
            zygote_end.close()
        self._control = host_end

    def wait_ready(self) -> IsolationReport:
        """The zygote's hello: which isolation layers it established."""
        try:
            hello = self._receive(time.monotonic() + STARTUP_TIMEOUT_S)
        except ZygoteFailed as exc:
            detail = self._stderr_tail()
            self.stop()
            raise SandboxUnavailable(f"sandbox worker did not start: {exc}{detail}") from exc
        if not hello.get("ok"):
            self.stop()
            raise SandboxUnavailable(f"sandbox worker could not isolate itself: {hello.get('error')}")
        self.isolation = IsolationReport(**hello["isolation"])
        return self.isolation

    def _stderr_tail(self) -> str:
        process = self._process
        if process is None or process.stderr is None or process.poll() is None:
            return ""
        text = process.stderr.read(8192).decode(errors="replace").strip()
        return f" ({text.splitlines()[-1]})" if text else ""

    def stop(self) -> None:
        process, self._process = self._process, None
        control, self._control = self._control, None
        if control is not None:
            control.close()  # the zygote's serve loop ends on EOF
        if process is None:
            return
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> IsolationReport:
        if self._process is not None:
            self._process.kill()
        self.stop()
        return self.start()

    # -- messages -----------------------------------------------------------------------------

    def _receive(self, deadline: float) -> dict[str, Any]:
        control = self._control
        if control is None:
            raise ZygoteFailed("sandbox worker is not running")
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([control], [], [], remaining)[0]:
            raise ZygoteFailed(f"sandbox worker {self.pid} did not answer in time")
        try:
            data = control.recv(_MAX_REPLY)
        except OSError as exc:
            raise ZygoteFailed(f"sandbox worker {self.pid} is gone ({exc})") from exc
        if not data:
            raise ZygoteFailed(f"sandbox worker {self.pid} exited (code {self._process.poll() if self._process else None})")
        try:
            message = json.loads(data)
        except ValueError as exc:
            raise ZygoteFailed(f"sandbox worker {self.pid} sent a malformed reply") from exc
        if not isinstance(message, dict):
            raise ZygoteFailed(f"sandbox worker {self.pid} sent a malformed reply")
        return message

    # -- one execution ------------------------------------------------------------------------

    def execute(self, mode: str, argv: list[str] | None, limits: dict[str, Any], request: bytes, stdin: bytes,
                timeout_s: float) -> dict[str, Any]:
        """Run one execution; the raw facts: the zygote's exit report plus the output read here.

        Raises ZygoteFailed when the zygote dies, hangs or reports an internal error.
        """
        control = self._control
        if control is None:
            raise ZygoteFailed("sandbox worker is not running")
        pipes = [os.pipe() for _ in range(_zygote.EXEC_FDS)]
        (request_r, request_w), (stdin_r, stdin_w), (stdout_r, stdout_w), (stderr_r, stderr_w), (status_r, status_w) = pipes
        # Every descriptor is closed exactly once (a second close could hit another thread's new pipe).
        ours = {request_w, stdin_w, stdout_r, stderr_r, status_r}
        theirs = [request_r, stdin_r, stdout_w, stderr_w, status_w]
        try:
            message = json.dumps({"op": "spawn", "mode": mode, "argv": argv, "limits": limits}).encode()
            try:
                socket.send_fds(control, [message], theirs)
            except OSError as exc:
                raise ZygoteFailed(f"sandbox worker {self.pid} is gone ({exc})") from exc
            _close_quietly(*theirs)
            theirs = []
            return self._supervise(control, ours, request_w, stdin_w, stdout_r, stderr_r, status_r, request, stdin,
                                   time.monotonic() + timeout_s)
        finally:
            _close_quietly(*theirs, *ours)

    def _supervise(self, control: socket.socket, ours: set[int], request_w: int, stdin_w: int, stdout_r: int, stderr_r: int,
                   status_r: int, request: bytes, stdin: bytes, deadline: float) -> dict[str, Any]:
        max_output = self._config.max_output_bytes
        stdout, stderr = _Stream(stdout_r, max_output), _Stream(stderr_r, _STDERR_KEEP_BYTES)
        status = _Stream(status_r, max_output)
        streams = {s.fd: s for s in (stdout, stderr, status)}
        feeds = {f.fd: f for f in (_Feed(request_w, memoryview(request)), _Feed(stdin_w, memoryview(stdin)))}
        poller = select.poll()
        for fd in (*streams, *feeds):
            os.set_blocking(fd, False)
        for fd in streams:
            poller.register(fd, select.POLLIN)
        for fd, feed in list(feeds.items()):
            if feed.pending:
                poller.register(fd, select.POLLOUT)
            else:
                ours.discard(fd)
                os.close(fd)
                del feeds[fd]
        poller.register(control.fileno(), select.POLLIN)
        report: dict[str, Any] | None = None
        output_limit = False
        while report is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ZygoteFailed(f"sandbox worker {self.pid} did not finish the execution in time")
            for fd, _ in poller.poll(remaining * 1000):
                if fd == control.fileno():
                    report = self._receive(deadline)
                elif fd in feeds:
                    feed = feeds[fd]
                    feed.write()
                    if not feed.pending:
                        poller.unregister(fd)
                        ours.discard(fd)
                        os.close(fd)
                        del feeds[fd]
                elif fd in streams:
                    streams[fd].read()
                    if streams[fd].closed:
                        poller.unregister(fd)
            if not output_limit and (stdout.total > max_output or status.total > max_output):
                output_limit = True
                try:
                    control.send(b'{"op": "kill"}')
                except OSError as exc:
                    raise ZygoteFailed(f"sandbox worker {self.pid} is gone ({exc})") from exc
        for fd in list(feeds):
            ours.discard(fd)
            os.close(fd)
        if not report.get("ok"):
            raise ZygoteFailed(f"sandbox worker {self.pid} failed: {report.get('error')}")
        self._drain(list(streams.values()))
        return {**report, "output_limit": output_limit or stdout.total > max_output,
                "stdout": stdout.data(), "stdout_bytes": stdout.total, "stderr": stderr.data(),
                "status": status.data(), "status_bytes": status.total}

    @staticmethod
    def _drain(streams: list[_Stream]) -> None:
        """Read what the (now dead) process tree left in the pipes."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        open_streams = [s for s in streams if not s.closed]
        while open_streams and time.monotonic() < deadline:
            ready, _, _ = select.select([s.fd for s in open_streams], [], [], deadline - time.monotonic())
            for stream in open_streams:
                if stream.fd in ready:
                    stream.read()
            open_streams = [s for s in open_streams if not s.closed]
