"""A real sandbox (namespaces, cgroups, seccomp, uid switch) shared by a test module, and host-integrity checks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tessy_core.verify import ExecutionLimits, Program, Sandbox, SandboxConfig, SandboxUnavailable, VerificationResult

FAST_LIMITS = ExecutionLimits(time_limit_s=0.5, memory_limit_mb=128)


def processes_of(uids: list[int]) -> list[int]:
    """Pids of live processes whose real uid is one of `uids` (scans /proc)."""
    wanted = {str(uid) for uid in uids}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue  # exited while we looked
        uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "")
        if uid_line.split()[1:2] and uid_line.split()[1] in wanted:
            found.append(int(entry.name))
    return found


def sysv_ipc_of(uids: list[int]) -> list[str]:
    """System V IPC objects (shared memory, message queues, semaphores) on the host owned by `uids`."""
    wanted = {str(uid) for uid in uids}
    found = []
    for kind in ("shm", "msg", "sem"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        header = lines[0].split()
        for line in lines[1:]:
            row = dict(zip(header, line.split()))
            if row.get("uid") in wanted or row.get("cuid") in wanted:
                found.append(f"{kind} key={row.get('key')}")
    return found


def files_of(uids: list[int], directories: tuple[str, ...] = ("/tmp", "/var/tmp", "/dev/shm")) -> list[str]:
    """Files directly in the host's shared scratch directories owned by `uids`."""
    found = []
    for directory in directories:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid in uids:
                    found.append(entry.path)
            except OSError:
                continue
    return found


def cgroup_members(sandbox: Sandbox) -> list[str]:
    """Processes still in the workers' cgroups (between executions there must be none)."""
    return [f"{d}: {pid}" for d in sandbox.cgroup_dirs() for pid in Path(d, "cgroup.procs").read_text().split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_sandbox(**settings) -> Sandbox:
    try:
        return Sandbox(SandboxConfig(**{"workers": 2, **settings}))
    except SandboxUnavailable as exc:  # e.g. an unprivileged CI container
        pytest.skip(f"sandbox isolation unavailable here: {exc}")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox() as pool:
        yield pool


def run(sandbox: Sandbox, source: str, tests: list[dict] | None = None,
        limits: ExecutionLimits = FAST_LIMITS, language: str = "python") -> VerificationResult:
    tests = tests if tests is not None else [{"input": "", "output": ""}]
    return sandbox.run_tests_sync(Program(language=language, source=source), tests, limits)


@pytest.fixture
def host_intact(sandbox: Sandbox) -> Iterator[None]:
    """After the test: the workers are the same live processes; nothing runs as a program uid or
    sits in the workers' cgroups; no System V IPC object and no file in the host's scratch
    directories belongs to a program uid; the pool still judges a trivial program correctly."""
    workers, restarts = sandbox.worker_pids(), sandbox.restarts
    yield
    assert sandbox.restarts == restarts, "a hostile program took a sandbox worker down"
    assert sandbox.worker_pids() == workers
    assert all(alive(pid) for pid in workers)
    uids = sandbox.program_uids()
    assert processes_of(uids) == []
    assert cgroup_members(sandbox) == []
    assert sysv_ipc_of(uids) == []
    assert files_of(uids) == []
    canary = run(sandbox, "print(int(input()) + 1)\n", [{"input": "41\n", "output": "42\n"}])
    assert canary.verdict.value == "accepted", canary
