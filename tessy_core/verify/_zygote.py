"""Pre-started worker process that forks one isolated process per program execution.

Started by `tessy_core.verify.worker` as `python -I -S _zygote.py SETTINGS_JSON` (the base
interpreter, no site-packages, a clean environment). It imports only the standard library: every
execution is a fork of this warm interpreter, which is what makes an execution cost a fork instead
of an interpreter start.

What it never holds: a program's source, a test's input or expected output, a program's output.
The host creates the pipes of each execution and passes them over the control socket (SCM_RIGHTS);
the zygote forks with them and closes its copies without reading a byte. The forked process reads
its own program and its own test from them, so no fork ever inherits another execution's data.

At start-up it enters its own network namespace (no interface up: no network at all) and its own
mount namespace whose root is a small read-only tmpfs holding only what the runtimes need (/usr,
the interpreter's prefix, a synthesized /etc and /dev), then pivot_roots into it: host files, the
host's /proc, /sys, /tmp, /run and home directories do not exist there.

Each execution (op "spawn"):
- the worker's cgroups are reset (CPU, memory peak, OOM and fork-failure counters; limits set);
- the fork becomes PID 1 of a fresh PID namespace (when it exits, the kernel kills everything the
  program started, and nothing outside the namespace is visible to it), then unshares fresh IPC,
  UTS and mount namespaces, mounts a private /tmp (its working directory, charged to its memory
  cgroup) and a /proc of its own PID namespace, joins the cgroups, applies rlimits, switches to the
  worker's unprivileged uid, installs a seccomp filter, reports "ready" on a pipe only the zygote
  reads (closed before the program gets control) and only then reads its request;
- the zygote watches it from outside: the tree's CPU time (cgroup) against the limit, the wall
  clock, and kill requests from the host (output limit); afterwards it reports the wait status
  and the tree's counters.

Control protocol (SOCK_SEQPACKET, one JSON object per message, fds with "spawn"):
    host -> zygote  {"op": "spawn", "mode": "python"|"exec"|"compile", "argv": [...]|null,
                     "limits": {...}}  + fds [request, stdin, stdout, stderr, status]
                    {"op": "kill"}                (during a spawn: stop the execution)
    zygote -> host  {"ok": true, "event": "hello", "pid": int, "isolation": {...}}
                    {"ok": true, "event": "exit", ...facts...} | {"ok": false, "error": str}
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import fcntl
import gc
import io
import json
import linecache
import os
import platform
import resource
import select
import shutil
import signal
import socket
import stat
import sys
import time
import traceback
import types
from typing import Any, NoReturn

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

# File descriptors of the program process.
STATUS_FD = 3  # Python harness -> host: the final status line (untrusted: the program can write here)
REQUEST_FD = 4  # host -> harness: {"source", "call"} (closed once read)
REPORT_FD = 5  # harness -> zygote: "R" when set up, or "E<reason>"; closed before the program runs
EXEC_FDS = 5  # request, stdin, stdout, stderr, status, in that order in a spawn message

SANDBOX_PATH = "/usr/bin:/bin"
# What the runtimes (the interpreter's libraries, g++ with its headers, libraries and helpers, the
# C.UTF-8 locale, time zones) need of /usr.
USR_RUNTIME = ("bin", "lib", "lib32", "lib64", "libx32", "libexec", "include", "share/zoneinfo")
WORK_DIR = "/tmp"  # a fresh tmpfs per execution
PROGRAM_DIR = "/prog"  # the loaded compiled program (root-owned, read-only for programs)
PROGRAM_ENV = {"PATH": SANDBOX_PATH, "HOME": WORK_DIR, "TMPDIR": WORK_DIR, "LANG": "C.UTF-8",
               "PYTHONIOENCODING": "utf-8"}
HOSTNAME = b"sandbox"
# Imported once here so that programs get them for free; all are light.
WARM_MODULES = (
    "array", "bisect", "collections", "copy", "decimal", "fractions", "functools", "heapq",
    "itertools", "math", "operator", "random", "re", "statistics", "string", "typing",
)
# Denied with EPERM: kernel keyrings (they outlive the process: a channel between executions),
# tracing and reading other processes, new namespaces and mounts, and kernel attack surface no
# judged program needs. clone3 answers ENOSYS (libc falls back to clone, whose flags are checked).
SECCOMP_DENIED = (
    "add_key", "keyctl", "request_key", "ptrace", "process_vm_readv", "process_vm_writev",
    "kcmp", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "swapon", "swapoff",
    "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "acct",
    "quotactl", "syslog", "lookup_dcookie", "name_to_handle_at", "open_by_handle_at",
    "fanotify_init", "vhangup", "iopl", "ioperm", "settimeofday", "clock_settime", "adjtimex",
    "clock_adjtime", "sethostname", "setdomainname", "personality",
)
SECCOMP_NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                           | CLONE_NEWPID | CLONE_NEWNET)
_MAX_MESSAGE = 1 << 16
_REPORT_LIMIT = 4096
_MIN_CPU_POLL_S = 0.005
WALL_STRETCH = 3.0  # the wall limit moves by the time spent waiting for a CPU, up to this many times
_MAX_CPU_POLL_S = 0.05

_libc = ctypes.CDLL(None, use_errno=True)


def _libc_call(name: str, *args: Any) -> int:
    result = getattr(_libc, name)(*args)
    if result == -1 or (name != "syscall" and result != 0):
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return result


def _mount(source: bytes | None, target: str, fstype: bytes | None, flags: int, data: str | None = None) -> None:
    _libc_call("mount", source, target.encode(), fstype, flags, data.encode() if data is not None else None)


def _bind_readonly(source: str, target: str) -> None:
    _mount(source.encode(), target, None, MS_BIND | MS_REC)
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


# ---------------------------------------------------------------------------------------------
# Seccomp: the filter is built once by libseccomp (a well-kept part), exported as BPF, and each
# program process loads those bytes with one prctl.


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def build_seccomp_filter() -> bytes:
    """BPF bytes of the program filter; OSError when libseccomp is missing or fails."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as exc:
        raise OSError(errno.ENOENT, f"libseccomp.so.2 not found ({exc}); install libseccomp2") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    allow, deny = 0x7FFF0000, 0x00050000 | errno.EPERM  # SCMP_ACT_ALLOW, SCMP_ACT_ERRNO(EPERM)
    ctx = lib.seccomp_init(allow)
    if not ctx:
        raise OSError(errno.EINVAL, "seccomp_init failed")
    try:
        def add(action: int, name: str, *conditions: _ArgCmp) -> None:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                return  # not a syscall on this architecture
            array = (_ArgCmp * len(conditions))(*conditions) if conditions else None
            result = lib.seccomp_rule_add_array(ctx, action, number, len(conditions), array)
            if result < 0:
                raise OSError(-result, f"seccomp_rule_add({name}) failed")

        for name in SECCOMP_DENIED:
            add(deny, name)
        add(0x00050000 | errno.ENOSYS, "clone3")
        # clone with any namespace flag (SCMP_CMP_MASKED_EQ is op 7: (arg & a) == b).
        for flag in (1 << bit for bit in range(32) if SECCOMP_NAMESPACE_FLAGS >> bit & 1):
            add(deny, "clone", _ArgCmp(0, 7, flag, flag))
        read_fd, write_fd = os.pipe()
        try:
            result = lib.seccomp_export_bpf(ctx, write_fd)
            os.close(write_fd)
            write_fd = -1
            if result < 0:
                raise OSError(-result, "seccomp_export_bpf failed")
            chunks = []
            while chunk := os.read(read_fd, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
    finally:
        lib.seccomp_release(ctx)
    program = b"".join(chunks)
    if not program or len(program) % 8:
        raise OSError(errno.EINVAL, "libseccomp exported an empty filter")
    return program


def load_seccomp_filter(program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _libc_call("prctl", PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)


# ---------------------------------------------------------------------------------------------
# The zygote's root: only what the runtimes need.


def _passwd(uid: int) -> str:
    return f"root:x:0:0:root:/:/usr/sbin/nologin\nsandbox:x:{uid}:{uid}:sandbox:{WORK_DIR}:/usr/sbin/nologin\n"


def build_root(staging: str, settings: dict[str, Any]) -> None:
    """Populate the tmpfs at `staging` with the sandbox's whole filesystem view."""
    for name in ("usr", "etc", "dev", "proc", "tmp", "prog", ".old"):
        os.mkdir(os.path.join(staging, name), 0o755)
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(staging, name))
        elif os.path.isdir(host):
            os.mkdir(os.path.join(staging, name), 0o755)
            _bind_readonly(host, os.path.join(staging, name))
    for name in USR_RUNTIME:  # not /usr/local, /usr/share, /usr/src: nothing a runtime needs
        host = os.path.join("/usr", name)
        if os.path.isdir(host) and not os.path.islink(host):
            os.makedirs(os.path.join(staging, "usr", name), 0o755)
            _bind_readonly(host, os.path.join(staging, "usr", name))
    for path in settings["runtime_paths"]:  # the interpreter's prefix, unless bound above already
        if any(path == f"/usr/{name}" or path.startswith(f"/usr/{name}/") for name in USR_RUNTIME):
            continue
        if path == "/usr":
            continue  # a system interpreter: its bin/ and lib/ are bound above
        target = staging + path
        os.makedirs(target, 0o755, exist_ok=True)
        _bind_readonly(path, target)
    etc = os.path.join(staging, "etc")
    for name, text in (("passwd", _passwd(settings["uid"])), ("group", f"root:x:0:\nsandbox:x:{settings['uid']}:\n"),
                       ("hostname", HOSTNAME.decode() + "\n"), ("hosts", "127.0.0.1 localhost sandbox\n")):
        with open(os.path.join(etc, name), "w") as handle:
            handle.write(text)
    for name in ("ld.so.cache", "ld.so.conf"):  # the loader's library index (not secret, just faster)
        if os.path.isfile("/etc/" + name):
            open(os.path.join(etc, name), "w").close()
            _bind_readonly("/etc/" + name, os.path.join(etc, name))
    if os.path.isdir("/etc/alternatives"):  # symlinks only (cc, c++, ...)
        os.mkdir(os.path.join(etc, "alternatives"))
        _bind_readonly("/etc/alternatives", os.path.join(etc, "alternatives"))
    dev = os.path.join(staging, "dev")
    for name, minor in (("null", 3), ("zero", 5), ("full", 7), ("random", 8), ("urandom", 9)):
        os.mknod(os.path.join(dev, name), stat.S_IFCHR | 0o666, os.makedev(1, minor))
        os.chmod(os.path.join(dev, name), 0o666)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("shm", WORK_DIR)):
        os.symlink(target, os.path.join(dev, name))


def establish_isolation(settings: dict[str, Any]) -> dict[str, bool]:
    """Enter the zygote's network and mount namespaces and pivot into the minimal root.

    Raises OSError when a layer cannot be set up; the host refuses to run programs then.
    """
    _libc_call("unshare", CLONE_NEWNET | CLONE_NEWNS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # A private tmpfs to stage the new root on (this namespace's /tmp; the host's is untouched).
    _mount(b"tmpfs", "/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700")
    staging = "/tmp/root"
    os.mkdir(staging, 0o755)
    _mount(b"tmpfs", staging, b"tmpfs", MS_NOSUID, "size=4m,mode=0755")
    build_root(staging, settings)
    _mount(b"tmpfs", os.path.join(staging, "prog"), b"tmpfs", MS_NOSUID | MS_NODEV,
           f"size={settings['scratch_mb']}m,mode=0755")
    pivot = SYS_PIVOT_ROOT.get(platform.machine())
    if pivot is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unknown architecture {platform.machine()}")
    _libc_call("syscall", pivot, staging.encode(), os.path.join(staging, ".old").encode())
    os.chdir("/")
    _libc_call("umount2", b"/.old", MNT_DETACH)
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
    return {"network_namespace": True, "mount_namespace": True, "minimal_root": True}


# ---------------------------------------------------------------------------------------------
# cgroups, as seen from the zygote: directory fds opened before the pivot.


class Cgroups:
    """The worker's cgroup(s): v1 (memory, pids, cpuacct hierarchies) or v2 (one directory)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.version: int = spec["version"]
        self.dirs = {name: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for name, path in spec["dirs"].items()}
        self.memory_limit: int | None = None
        self.processes: int | None = None
        self._cpu_fd = self._open("cpuacct", "cpuacct.usage") if self.version == 1 else self._open("cpu", "cpu.stat")
        try:  # v2: memory.peak since Linux 5.19, resettable per descriptor since 6.12
            self._peak_fd: int | None = self._open(
                "memory", "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak", os.O_RDWR)
        except OSError:
            self._peak_fd = None
        self._baseline: dict[str, int] = {}
        self._fds: dict[str, int] = {}
        if self.version == 2:
            self._write("memory", "memory.swap.max", "0", missing_ok=True)
            self._write("memory", "memory.oom.group", "1", missing_ok=True)

    @property
    def join_dirs(self) -> list[int]:
        return list(dict.fromkeys(self.dirs.values()))  # v2: one directory for every controller

    def _open(self, controller: str, name: str, flags: int = os.O_RDONLY) -> int:
        return os.open(name, flags, dir_fd=self.dirs[controller])

    def _read(self, controller: str, name: str) -> str:
        fd = self._open(controller, name)
        try:
            return os.read(fd, 1 << 16).decode()
        finally:
            os.close(fd)

    def _write(self, controller: str, name: str, value: str, missing_ok: bool = False) -> None:
        try:
            fd = self._open(controller, name, os.O_WRONLY)
        except FileNotFoundError:
            if missing_ok:
                return
            raise
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    @staticmethod
    def _field(text: str, key: str) -> int:
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
        return 0

    def cpu_ns(self) -> int:
        data = os.pread(self._cpu_fd, 4096, 0).decode()
        if self.version == 1:
            return int(data)
        return self._field(data, "usage_usec") * 1000

    def cpu_used_ns(self) -> int:
        """CPU time of the tree since `prepare`."""
        return self.cpu_ns() - self._baseline["cpu_ns"]

    def _counter(self, controller: str, name: str) -> str:
        """A counter file's content through a descriptor kept open (read again with pread)."""
        key = f"{controller}/{name}"
        fd = self._fds.get(key)
        if fd is None:
            fd = self._fds[key] = self._open(controller, name)
        return os.pread(fd, 4096, 0).decode()

    def _counters(self) -> dict[str, int]:
        events = "memory.oom_control" if self.version == 1 else "memory.events"
        return {"oom_kills": self._field(self._counter("memory", events), "oom_kill"),
                "pids_max": self._field(self._counter("pids", "pids.events"), "max"),
                "cpu_ns": self.cpu_ns()}

    def _set_memory_limit(self, limit: int) -> None:
        names = (("memory.limit_in_bytes", "memory.memsw.limit_in_bytes") if self.version == 1
                 else ("memory.max",))
        if self.memory_limit is None:
            current = self._read("memory", names[0]).strip()
            self.memory_limit = 1 << 62 if current == "max" else int(current)
        raising = limit > self.memory_limit
        for name in (reversed(names) if raising else names):  # memsw never below the plain limit
            try:
                self._write("memory", name, str(limit), missing_ok=True)
            except OSError as exc:
                if exc.errno != errno.EBUSY or self.version != 1:
                    raise
                self._write("memory", "memory.force_empty", "0")  # old page cache over a lower limit
                self._write("memory", name, str(limit))
        self.memory_limit = limit

    def prepare(self, memory_bytes: int, processes: int) -> None:
        """Before an execution: empty, limits set, counters at their baseline."""
        current = int(self._counter("pids", "pids.current"))
        if current:
            raise RuntimeError(f"the worker's cgroup still holds {current} processes")
        if memory_bytes != self.memory_limit:
            self._set_memory_limit(memory_bytes)
        if processes != self.processes:
            self._write("pids", "pids.max", str(processes))
            self.processes = processes
        if self._peak_fd is not None:
            try:
                os.pwrite(self._peak_fd, b"0" if self.version == 1 else b"reset", 0)
            except OSError:
                os.close(self._peak_fd)  # not resettable here: the peak is not reported
                self._peak_fd = None
        self._baseline = self._counters()

    def facts(self) -> dict[str, int]:
        """After an execution (the tree is gone): what the tree used, from outside."""
        now = self._counters()
        peak = int(os.pread(self._peak_fd, 64, 0).decode() or 0) if self._peak_fd is not None else 0
        return {"cpu_ns": now["cpu_ns"] - self._baseline["cpu_ns"],
                "oom_kills": now["oom_kills"] - self._baseline["oom_kills"],
                "pids_max": now["pids_max"] - self._baseline["pids_max"],
                "memory_peak_bytes": peak}


# ---------------------------------------------------------------------------------------------
# In the program process (PID 1 of its namespaces). Everything up to running the program.


def _set_limit(kind: int, soft: int, hard: int | None = None) -> None:
    wanted_hard = soft if hard is None else hard
    resource.setrlimit(kind, (min(soft, wanted_hard), wanted_hard))


def _apply_limits(limits: dict[str, Any]) -> None:
    # CPU and memory are enforced on the whole tree through cgroups by the zygote; the rlimit is a
    # per-process backstop well past the limit, in case the zygote's watch were late.
    cpu_s = int(limits["cpu_s"]) + 2
    _set_limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    _set_limit(resource.RLIMIT_STACK, min(limits["memory_mb"], 64) << 20)
    _set_limit(resource.RLIMIT_FSIZE, limits["file_mb"] << 20)
    _set_limit(resource.RLIMIT_NOFILE, limits["open_files"])
    _set_limit(resource.RLIMIT_NPROC, limits["processes"])
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_MSGQUEUE, 0)
    _set_limit(resource.RLIMIT_MEMLOCK, 0)


def _enter_namespaces(uid: int, scratch_mb: int) -> None:
    _libc_call("unshare", CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)
    _libc_call("sethostname", HOSTNAME, len(HOSTNAME))
    _mount(b"tmpfs", WORK_DIR, b"tmpfs", MS_NOSUID | MS_NODEV,
           f"size={scratch_mb}m,mode=0700,uid={uid},gid={uid}")
    try:  # only the processes, no /proc/sys, /proc/kcore...: Linux 5.8 and later
        _mount(b"proc", "/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid,hidepid=invisible")
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        _mount(b"proc", "/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")


def _program_main(zygote: Zygote, job: dict[str, Any], fds: list[int], report_fd: int) -> NoReturn:
    """The forked execution. Set up, report ready, then read the request and run it."""
    exit_code = 120
    report = report_fd
    try:
        _enter_namespaces(zygote.uid, zygote.scratch_mb)
        for dir_fd in zygote.cgroups.join_dirs:
            procs = os.open("cgroup.procs", os.O_WRONLY, dir_fd=dir_fd)
            os.write(procs, b"0")
            os.close(procs)
        os.setsid()
        request_fd, stdin_fd, stdout_fd, stderr_fd, status_fd = fds
        # Park every descriptor above the target slots first: a received fd may sit in one of them.
        targets = {REQUEST_FD: request_fd, 0: stdin_fd, 1: stdout_fd, 2: stderr_fd, STATUS_FD: status_fd,
                   REPORT_FD: report_fd}
        parked = {target: fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for target, fd in targets.items()}
        report = parked[REPORT_FD]
        for target, fd in parked.items():
            os.dup2(fd, target)
        report = REPORT_FD
        os.closerange(REPORT_FD + 1, 1 << 20)
        os.chdir(PROGRAM_DIR if job["mode"] == "compile" else WORK_DIR)
        _apply_limits(job["limits"])
        os.setgroups([])
        os.setresgid(zygote.uid, zygote.uid, zygote.uid)
        os.setresuid(zygote.uid, zygote.uid, zygote.uid)
        _libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The uid change made it non-dumpable: its own /proc files would be root's and its children
        # invisible to it. It holds nothing but its own program and test, so normal semantics are safe.
        _libc_call("prctl", PR_SET_DUMPABLE, 1, 0, 0, 0)
        load_seccomp_filter(zygote.seccomp)
    except BaseException as exc:  # noqa: BLE001 - a setup failure is the sandbox's, never the program's
        try:
            os.write(report, f"E{type(exc).__name__}: {exc}"[:_REPORT_LIMIT].encode())
        finally:
            os._exit(exit_code)
    try:
        os.write(REPORT_FD, b"R")
        os.close(REPORT_FD)
        if job["mode"] == "python":
            request = json.loads(_read_all(REQUEST_FD))
            os.close(REQUEST_FD)
            exit_code = _run_python(request["source"], request["call"])
        else:
            if job["mode"] == "compile":
                source = _read_all(REQUEST_FD)
                with open("main.cpp", "wb") as handle:
                    handle.write(source)
            os.close(REQUEST_FD)
            os.close(STATUS_FD)
            for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            os.execve(job["argv"][0], job["argv"], dict(os.environ))
    except BaseException:  # noqa: BLE001 - the program's own doing (or a failed execve): its verdict
        exit_code = 127 if job["mode"] != "python" else 1
    finally:
        os._exit(exit_code)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _report_status(status: dict[str, Any]) -> None:
    status["pid"] = os.getpid()  # 1 in the program process; its forked children report too
    try:
        data = (json.dumps(status) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(STATUS_FD, view):]
    except (OSError, ValueError):
        pass  # the program closed or broke its status channel; the host sees no status


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _install_std_streams() -> None:
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False), 1 << 16), encoding="utf-8")
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8",
        errors="backslashreplace", line_buffering=True)


def _flush_std_streams() -> None:
    for stream in {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}.values():
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - the program may have closed or replaced its streams
            pass


def _resolve_callable(namespace: dict[str, Any], fn_name: str) -> Any:
    solution_class = namespace.get("Solution")
    if isinstance(solution_class, type) and hasattr(solution_class, fn_name):
        return getattr(solution_class(), fn_name)
    function = namespace.get(fn_name)
    if callable(function):
        return function
    raise NameError(f"no top-level function or Solution method named {fn_name!r}")


def _print_program_traceback(exc: BaseException) -> None:
    # Skip this module's frame so the traceback starts in the program.
    traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)


def _run_python(source: str, call: dict[str, Any] | None) -> int:
    filename = os.path.join(WORK_DIR, "main.py")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    main_module = types.ModuleType("__main__")
    main_module.__file__ = filename
    main_module.__builtins__ = builtins
    sys.modules["__main__"] = main_module
    sys.argv = [filename]
    sys.path.insert(0, WORK_DIR)
    _install_std_streams()
    import atexit

    atexit._clear()  # only the program's own handlers run at its end
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        traceback.print_exception(type(exc), exc, None)
        _flush_std_streams()
        _report_status({"phase": "compile", "error": type(exc).__name__})
        return 1
    del source
    exit_code = 0
    status: dict[str, Any] = {"phase": "done"}
    try:
        exec(code, main_module.__dict__)
        if call is not None:
            result = _resolve_callable(main_module.__dict__, call["fn_name"])(*call["args"])
            try:
                status["result_json"] = json.dumps(result)
            except (TypeError, ValueError, RecursionError):
                status = {"phase": "error", "error": "UnserializableResult"}
                print(f"return value of type {type(result).__name__} is not JSON-serializable", file=sys.stderr)
                exit_code = 1
    except SystemExit as exc:
        exit_code = _exit_code(exc)
    except BaseException as exc:  # noqa: BLE001 - any failure of the program is its verdict
        status = {"phase": "error", "error": type(exc).__name__}
        exit_code = 1
        try:
            _print_program_traceback(exc)
        except BaseException:  # noqa: BLE001 - e.g. MemoryError again while formatting
            pass
    try:
        atexit._run_exitfuncs()
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
    except BaseException:  # noqa: BLE001
        pass
    _flush_std_streams()
    status["exit_code"] = exit_code
    _report_status(status)
    return exit_code


# ---------------------------------------------------------------------------------------------
# In the zygote.


def _close_quietly(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class Zygote:
    def __init__(self, settings: dict[str, Any], control: socket.socket, cgroups: Cgroups, seccomp: bytes,
                 pid_namespace_fd: int, proc_fd: int) -> None:
        self.proc_fd = proc_fd
        self.uid: int = settings["uid"]
        self.scratch_mb: int = settings["scratch_mb"]
        self.control = control
        self.cgroups = cgroups
        self.seccomp = seccomp
        self.pid_namespace_fd = pid_namespace_fd
        self.cpus = max(1, len(os.sched_getaffinity(0)))
        self.loaded = False

    def send(self, message: dict[str, Any]) -> None:
        self.control.send(json.dumps(message).encode())

    def serve(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.control, _MAX_MESSAGE, EXEC_FDS)
            except InterruptedError:
                continue
            if not data:
                _close_quietly(*fds)
                return  # the host went away
            try:
                request = json.loads(data)
                if request.get("op") == "kill":
                    _close_quietly(*fds)
                    continue  # late: its execution is already over
                if request.get("op") != "spawn":
                    raise ValueError(f"unknown op {request.get('op')!r}")
                reply = self.spawn(request, fds)
            except Exception as exc:  # noqa: BLE001 - report instead of dying; the host restarts on repeats
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            finally:
                _close_quietly(*fds)
            self.send(reply)

    def _prepare_program_dir(self, mode: str) -> None:
        """Only the program being judged is ever in PROGRAM_DIR: a compile or a Python run clears it."""
        if mode == "exec":
            if not self.loaded:
                raise RuntimeError("no compiled program loaded")
            return
        if self.loaded or mode == "compile":
            for name in os.listdir(PROGRAM_DIR):
                path = os.path.join(PROGRAM_DIR, name)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
            self.loaded = False
        if mode == "compile":
            os.chown(PROGRAM_DIR, self.uid, self.uid)
            os.chmod(PROGRAM_DIR, 0o700)

    def _seal_program_dir(self) -> bool:
        """After compiling: root owns everything, programs can only read and run it."""
        for name in os.listdir(PROGRAM_DIR):
            path = os.path.join(PROGRAM_DIR, name)
            if not stat.S_ISREG(os.lstat(path).st_mode):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
                continue
            os.chown(path, 0, 0)
            os.chmod(path, 0o755 if name == "prog" else 0o644)
        os.chown(PROGRAM_DIR, 0, 0)
        os.chmod(PROGRAM_DIR, 0o755)
        return os.path.isfile(os.path.join(PROGRAM_DIR, "prog"))

    def spawn(self, request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        mode, limits = request["mode"], request["limits"]
        if len(fds) != EXEC_FDS or mode not in ("python", "exec", "compile"):
            raise ValueError("malformed spawn request")
        job = {"mode": mode, "limits": limits, "argv": request.get("argv")}
        self.cgroups.prepare(int(limits["memory_mb"]) << 20, int(limits["processes"]))
        self._prepare_program_dir(mode)
        report_r, report_w = os.pipe()
        # The fork becomes PID 1 of a fresh PID namespace.
        _libc_call("setns", self.pid_namespace_fd, CLONE_NEWPID)
        _libc_call("unshare", CLONE_NEWPID)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            _program_main(self, job, fds, report_w)
        os.close(report_w)
        try:
            killed_for, wait_status = self._supervise(pid, limits, started)
            wall_s = time.monotonic() - started
            report = _read_all(report_r)[:_REPORT_LIMIT].decode("utf-8", errors="replace")
        finally:
            os.close(report_r)
        facts = self.cgroups.facts()
        reply: dict[str, Any] = {"ok": True, "event": "exit", "wait_status": wait_status, "wall_s": wall_s,
                                 "killed_for": killed_for, "ready": report.startswith("R"),
                                 "setup_error": report[1:] if report.startswith("E") else None, **facts}
        if mode == "compile":
            reply["compiled"] = self.loaded = self._seal_program_dir()
        return reply

    def _run_delay_s(self, schedstat_fd: int | None) -> float:
        """How long the program process was runnable but waiting for a CPU (other load), in seconds."""
        if schedstat_fd is None:
            return 0.0
        try:
            return int(os.pread(schedstat_fd, 128, 0).split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

    def _supervise(self, pid: int, limits: dict[str, Any], started: float) -> tuple[str | None, int]:
        pidfd = os.pidfd_open(pid)
        try:
            schedstat_fd: int | None = os.open(f"{pid}/schedstat", os.O_RDONLY, dir_fd=self.proc_fd)
        except OSError:
            schedstat_fd = None  # no scheduler statistics in this kernel: the plain wall limit
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(self.control.fileno(), select.POLLIN)
        wall_s = float(limits["wall_s"])
        deadline = started + wall_s
        cpu_limit_ns = int(float(limits["cpu_s"]) * 1e9)
        killed_for: str | None = None
        interval = _MIN_CPU_POLL_S
        try:
            while True:
                ready = {fd for fd, _ in poller.poll(max(0.0, min(interval, deadline - time.monotonic())) * 1000)}
                if pidfd in ready:
                    break
                if self.control.fileno() in ready:
                    message = self.control.recv(_MAX_MESSAGE)
                    if not message:
                        killed_for = killed_for or "host_gone"
                        poller.unregister(self.control.fileno())
                    elif killed_for is None:
                        killed_for = "host"
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                if killed_for is not None:
                    continue
                used = self.cgroups.cpu_used_ns()
                if used >= cpu_limit_ns:
                    killed_for = "cpu"
                elif time.monotonic() >= deadline:
                    # Time spent waiting for a CPU is the machine's load, not the program's doing: the
                    # deadline moves by it (up to WALL_STRETCH times the limit), so a starved program
                    # ends on its CPU limit like on an idle machine. A sleeping one never waits for a CPU.
                    stretched = min(self._run_delay_s(schedstat_fd), WALL_STRETCH * wall_s)
                    if time.monotonic() >= started + wall_s + stretched:
                        killed_for = "wall"
                    else:
                        deadline = started + wall_s + stretched
                if killed_for is not None:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    continue
                # The tree may run on every CPU at once: check again before it could reach the limit.
                interval = min(_MAX_CPU_POLL_S, max(_MIN_CPU_POLL_S, (cpu_limit_ns - used) / 1e9 / self.cpus))
        finally:
            _, wait_status = os.waitpid(pid, 0)
            os.close(pidfd)
            if schedstat_fd is not None:
                os.close(schedstat_fd)
        return killed_for, wait_status


def _warm_up() -> None:
    for name in WARM_MODULES:
        __import__(name)
    import atexit  # noqa: F401 - used by the harness

    # Objects that exist now are never collected; children then do not touch (and copy) their pages.
    gc.collect()
    gc.freeze()


def main(argv: list[str]) -> int:
    settings = json.loads(argv[1])
    control = socket.socket(fileno=settings["control_fd"])
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.close(devnull)
    isolation = {"network_namespace": False, "mount_namespace": False, "minimal_root": False,
                 "pid_namespace": False, "ipc_namespace": False, "uts_namespace": False,
                 "uid_switch": os.geteuid() == 0, "cgroups": False, "seccomp": False}
    try:
        if os.geteuid() != 0:
            raise PermissionError("the sandbox's zygote must run as root (namespaces, mounts, uid switch)")
        pid_namespace_fd = os.open("/proc/self/ns/pid", os.O_RDONLY)
        proc_fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)  # the host's: schedstat of programs
        cgroups = Cgroups(settings["cgroups"])
        isolation["cgroups"] = True
        seccomp = build_seccomp_filter()
        isolation["seccomp"] = True
        isolation.update(establish_isolation(settings))
        isolation.update(pid_namespace=True, ipc_namespace=True, uts_namespace=True)
        _libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # inherited: no execve can gain privileges
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        control.send(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                 "isolation": isolation}).encode())
        return 1
    os.environ.clear()
    os.environ.update(PROGRAM_ENV)
    zygote = Zygote(settings, control, cgroups, seccomp, pid_namespace_fd, proc_fd)
    _warm_up()
    zygote.send({"ok": True, "event": "hello", "pid": os.getpid(), "isolation": isolation})
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
