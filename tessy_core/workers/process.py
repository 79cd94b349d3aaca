"""Detached server processes: launch, identify after the fact, and stop by process group.

Each server runs as the leader of its own session (so of its own process group): vLLM's engine
processes are its children and share the group, so signalling the group reaches them all. A
record of pid, start time (kernel clock ticks) and command line is kept on disk; a pid only counts as ours while its
start time and command line still match the record, so a reused pid is never signalled.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

import psutil
from pydantic import BaseModel, ConfigDict

from tessy_core.workers.config import OMP_BIND, ServerSpec



class WorkerRecord(BaseModel):
    """What `start` leaves in `state_dir/<name>.json` for `status` and `stop`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    pid: int
    url: str
    cmdline: list[str]
    # When the kernel started the process, in clock ticks since boot (see `start_ticks`).
    start_ticks: int
    started_at: float
    log_path: Path

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "WorkerRecord":
        return cls.model_validate(json.loads(path.read_text()))


def launch(spec: ServerSpec, log_path: Path, cores: list[int] | None = None) -> tuple[subprocess.Popen, WorkerRecord]:
    """Start `spec` detached, output to `log_path` (truncated). `cores`: the CPU cores the server
    runs on, its compute threads and every process it starts (`WorkersConfig.cpu_cores`)."""
    env = {OMP_BIND: ",".join(map(str, cores))} if cores else {}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmdline = spec.command()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmdline,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, **spec.environment()},
            start_new_session=True,
        )
    if cores:
        # Before the server starts its engine processes (seconds later), which inherit it.
        os.sched_setaffinity(process.pid, cores)
    record = WorkerRecord(
        name=spec.name,
        pid=process.pid,
        url=spec.url,
        cmdline=cmdline,
        start_ticks=start_ticks(process.pid),
        started_at=time.time(),
        log_path=log_path.absolute(),
    )
    return process, record


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports nothing listens on right now (the OS picks them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = [socket.socket(family, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Same option as the server's own listener, so sockets in TIME_WAIT don't count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def start_ticks(pid: int) -> int:
    """When the kernel started `pid`, in clock ticks since boot: what tells a pid's process from a
    later one that reuses the pid. psutil's `create_time()` adds the boot time as of each call, and
    that moves (by whole seconds) whenever the wall clock is stepped, so two reads of one process
    can disagree and a live server would look gone. Raises `psutil.NoSuchProcess`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise psutil.NoSuchProcess(pid) from None
    # Fields after the command name, which is in parentheses and may itself hold spaces or ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])  # field 22 of proc(5): starttime


def leader_is_alive(record: WorkerRecord) -> bool:
    """True while the recorded pid is still the process `start` launched, and not a zombie."""
    try:
        process = psutil.Process(record.pid)
        same_process = start_ticks(record.pid) == record.start_ticks and process.cmdline() == record.cmdline
        return same_process and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_members(record: WorkerRecord) -> list[psutil.Process]:
    """Live processes of the server's process group (the leader and what it spawned).

    Linux does not hand out a pid that still names a process group, so while any member lives
    the group id is ours; once the leader's pid belongs to another process the group is gone.
    """
    try:
        if start_ticks(record.pid) != record.start_ticks:
            return []
    except psutil.NoSuchProcess:
        pass  # The leader is gone; processes it spawned may still hold the group.
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == record.pid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def stop_group(record: WorkerRecord, grace_s: float) -> str:
    """SIGTERM the server's group, SIGKILL what is left after `grace_s`; says what happened."""
    if not group_members(record):
        return "not running"
    _signal_group(record.pid, signal.SIGTERM)
    if _wait_until_gone(record, grace_s):
        return "stopped"
    _signal_group(record.pid, signal.SIGKILL)
    if _wait_until_gone(record, 5.0):
        return "killed"
    return "still running after SIGKILL"


def log_tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    with path.open("r", errors="replace") as log:
        return "".join(deque(log, maxlen=lines))


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _wait_until_gone(record: WorkerRecord, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while group_members(record):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True
