"""The cgroups that account for and limit each worker's program trees (host side).

Each worker owns one cgroup (per hierarchy on cgroup v1: memory, pids, cpuacct), named after its
program uid: `<this process's cgroup>/tessy-sandbox/slot-<uid>`. The zygote resets its counters
and limits before every execution, the program process joins it before it drops root, and every
process the program starts is born in it: CPU time, memory (tmpfs files included) and the number
of tasks are the whole tree's, read from outside. A worker's cgroup is reused across executions
(creating and removing a memory cgroup per execution leaves dying cgroups behind at hundreds per
second); it is verifiably empty between executions (the PID namespace is gone with its tree).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from tessy_core.verify.errors import SandboxUnavailable

GROUP = "tessy-sandbox"
V1_CONTROLLERS = ("memory", "pids", "cpuacct")
V2_CONTROLLERS = ("memory", "pids")


@dataclass(frozen=True)
class CgroupSlot:
    """The directories of one worker's cgroup: controller name -> path (one path on v2)."""

    version: int
    dirs: dict[str, str]

    def spec(self) -> dict[str, object]:
        return {"version": self.version, "dirs": dict(self.dirs)}


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fstype, super options) of every cgroup mount."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        head, _, tail = line.partition(" - ")
        fields, tail_fields = head.split(), tail.split()
        if len(fields) < 5 or len(tail_fields) < 3 or tail_fields[0] not in ("cgroup", "cgroup2"):
            continue
        found.append((fields[3], fields[4], tail_fields[0], set(tail_fields[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup per v1 controller, and under "" its v2 cgroup."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _under(mount_point: str, mount_root: str, path: str) -> Path:
    relative = os.path.relpath(path, mount_root) if path.startswith(mount_root) else path.lstrip("/")
    return Path(mount_point) / ("" if relative == "." else relative)


def locate() -> tuple[int, dict[str, Path]]:
    """The cgroup hierarchy to use and, per controller, the directory of this process's cgroup.

    cgroup v1 when memory, pids and cpuacct are mounted as v1 hierarchies (hybrid hosts); otherwise
    cgroup v2 when its memory and pids controllers are available to this process's cgroup.
    """
    mounts, own = _mounts(), _own_paths()
    v1: dict[str, Path] = {}
    for root, point, fstype, options in mounts:
        for controller in V1_CONTROLLERS:
            if fstype == "cgroup" and controller in options and controller in own and controller not in v1:
                v1[controller] = _under(point, root, own[controller])
    if len(v1) == len(V1_CONTROLLERS):
        return 1, v1
    for root, point, fstype, _ in mounts:
        if fstype != "cgroup2" or "" not in own:
            continue
        base = _under(point, root, own[""])
        available = set((base / "cgroup.controllers").read_text().split()) if (base / "cgroup.controllers").exists() else set()
        if set(V2_CONTROLLERS) <= available:
            return 2, {"": base}
        raise SandboxUnavailable(
            f"cgroup v2 at {base} lacks the {' and '.join(sorted(set(V2_CONTROLLERS) - available))} controller(s) "
            "the sandbox needs to limit a program's whole process tree; delegate them to this process's "
            "cgroup (e.g. systemd-run --scope -p Delegate=yes) or run where cgroups are available")
    raise SandboxUnavailable(
        "no cgroup hierarchy with memory, pids and CPU accounting is mounted here (/sys/fs/cgroup); the "
        "sandbox needs one to limit and account a program's whole process tree")


def _kill_members(directory: Path) -> None:
    procs = directory / "cgroup.procs"
    for _ in range(50):
        pids = [int(pid) for pid in procs.read_text().split()] if procs.exists() else []
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.sched_yield()


def _enable(directory: Path, controllers: tuple[str, ...]) -> None:
    enabled = set((directory / "cgroup.subtree_control").read_text().split())
    missing = [c for c in controllers if c not in enabled]
    if not missing:
        return
    try:
        (directory / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
    except OSError as exc:
        raise SandboxUnavailable(
            f"cannot enable the {', '.join(missing)} controller(s) for {directory} ({exc.strerror}); cgroup v2 "
            "allows it only in a cgroup without processes of its own: run the sandbox's host process in a "
            "delegated sub-cgroup (e.g. systemd-run --scope -p Delegate=yes)") from None


def claim(uid: int) -> CgroupSlot:
    """Create (or reuse, emptied) the cgroup of the worker whose program uid is `uid`."""
    version, bases = locate()
    dirs: dict[str, str] = {}
    try:
        if version == 1:
            for controller, base in bases.items():
                slot = base / GROUP / f"slot-{uid}"
                slot.mkdir(parents=True, exist_ok=True)
                _kill_members(slot)
                dirs[controller] = str(slot)
        else:
            base = bases[""]
            _enable(base, V2_CONTROLLERS)
            (base / GROUP).mkdir(exist_ok=True)
            _enable(base / GROUP, V2_CONTROLLERS)
            slot = base / GROUP / f"slot-{uid}"
            slot.mkdir(exist_ok=True)
            _kill_members(slot)
            dirs = {"memory": str(slot), "pids": str(slot), "cpu": str(slot)}
    except PermissionError as exc:
        raise SandboxUnavailable(f"cannot create the sandbox's cgroups ({exc}); the sandbox needs root") from None
    return CgroupSlot(version, dirs)


def release(slot: CgroupSlot) -> None:
    """Remove the worker's cgroup (after its zygote exited); one still busy is left for the next claim."""
    for directory in dict.fromkeys(slot.dirs.values()):
        try:
            os.rmdir(directory)
        except OSError:
            pass
