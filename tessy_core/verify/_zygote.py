"""Pre-started worker process that forks one isolated child per program execution.

Started by `tessy_core.verify.worker` as `python -I _zygote.py SETTINGS_JSON`, with a clean
environment. It must import only the standard library: every child it forks inherits its interpreter
state, so a small, warm zygote is what makes an execution cost a fork instead of an interpreter start.

At start-up it moves into its own network namespace (no interfaces up, so no network at all) and its
own mount namespace (root file system read-only, fresh tmpfs over the world-writable directories),
then answers length-prefixed JSON requests on stdin/stdout:

    {"op": "load", "language": "python"|"cpp", "source": str, "compile": {...}}  one program at a time
    {"op": "run", "stdin": str, "call": {"fn_name", "args"} | null, "limits": {...},
     "program": {"language": "python", "source": str} | absent}   absent: the loaded program

Each execution runs in a forked child that becomes a session leader, switches to the slot's own
unprivileged uid (so it can neither signal nor trace the zygote), applies rlimits, gets a private
working directory and a minimal environment, and then either executes the Python source in a fresh
`__main__` (no exec, the interpreter is already warm) or execve()s the compiled binary. Afterwards
every process left with that uid is killed, which also catches descendants that escaped the session.
"""

from __future__ import annotations

import atexit
import builtins
import ctypes
import gc
import io
import json
import linecache
import os
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback
import types
from typing import Any, NoReturn

_HEADER = struct.Struct("!I")
_READ_CHUNK = 1 << 16
_STDERR_KEEP_BYTES = 1 << 16
_STATUS_FD = 3
_DRAIN_TIMEOUT_S = 2.0

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

# Masked with an empty read-only tmpfs so programs cannot leave files where the host would see them.
MASKED_WRITABLE_DIRS = ("/var/tmp", "/dev/shm", "/run/lock")
# Our own tmpfs: program and run directories live here, and vanish with the namespace.
SCRATCH_ROOT = "/tmp"
# Imported once here so that children of the zygote get them for free; all are light.
WARM_MODULES = (
    "array", "bisect", "collections", "copy", "decimal", "fractions", "functools", "heapq",
    "itertools", "math", "operator", "random", "re", "statistics", "string", "typing",
)
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# Every run of a zygote uses this one directory (emptied between runs), so the environment the
# programs see is constant: the zygote sets it once and children inherit it without touching it.
WORK_DIR = os.path.join(SCRATCH_ROOT, "work")
PROGRAM_ENV = {"PATH": SANDBOX_PATH, "HOME": WORK_DIR, "TMPDIR": WORK_DIR, "LANG": "C.UTF-8",
               "PYTHONIOENCODING": "utf-8"}

_libc = ctypes.CDLL(None, use_errno=True)


# ---------------------------------------------------------------------------------------------
# Framing, shared with the host side (tessy_core.verify.worker imports these two functions).


def encode_message(payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("protocol message is not a JSON object")
    return message


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_request(fd: int) -> dict[str, Any] | None:
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    body = _read_exact(fd, _HEADER.unpack(header)[0])
    return None if body is None else decode_body(body)


# ---------------------------------------------------------------------------------------------
# Namespaces.


def _libc_call(name: str, *args: Any) -> None:
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _mount_tmpfs(target: str, options: str) -> None:
    _libc_call("mount", b"tmpfs", target.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode())


def _bind(source: str, target: str) -> None:
    _libc_call("mount", source.encode(), target.encode(), None, MS_BIND | MS_REC, None)


def _first_blocked_ancestor(path: str) -> str | None:
    """The outermost directory above `path` that other users cannot traverse (e.g. a 0700 /root)."""
    ancestors: list[str] = []
    parent = os.path.dirname(path)
    while parent not in ("/", ""):
        ancestors.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(ancestors):
        if not os.stat(directory).st_mode & 0o001:
            return directory
    return None


def _import_roots() -> list[str]:
    roots = sorted({os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)})
    return [r for r in roots if not any(r.startswith(other + os.sep) for other in roots if other != r)]


def expose_import_roots() -> None:
    """Make the interpreter's import roots reachable for the unprivileged program uid.

    When the interpreter lives under a directory others cannot traverse (pyenv in a 0700 /root), the
    program could import only what the zygote already imported. Inside our mount namespace that
    directory is replaced by an empty tmpfs into which only the import roots are bind-mounted back,
    read-only; the rest of it (keys, credentials) stays invisible.
    """
    blocked: dict[str, list[str]] = {}
    for root in _import_roots():
        ancestor = _first_blocked_ancestor(root)
        if ancestor is not None:
            blocked.setdefault(ancestor, []).append(root)
    for index, (ancestor, roots) in enumerate(blocked.items()):
        stages = []
        for number, root in enumerate(roots):
            stage = os.path.join(SCRATCH_ROOT, f".stage-{index}-{number}")
            os.mkdir(stage)
            _bind(root, stage)
            stages.append(stage)
        _mount_tmpfs(ancestor, "size=64k,mode=0755")
        for stage, root in zip(stages, roots):
            os.makedirs(root, 0o755, exist_ok=True)
            _bind(stage, root)
            _libc_call("mount", b"none", root.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
            _libc_call("umount2", stage.encode(), MNT_DETACH)
            os.rmdir(stage)


def establish_isolation(scratch_mb: int) -> dict[str, bool]:
    """Enter private namespaces; report which layers hold (the host decides whether that suffices)."""
    report = {
        "network_namespace": False,
        "mount_namespace": False,
        "private_tmp": False,
        "readonly_root": False,
        "uid_switch": os.geteuid() == 0,
    }
    try:
        _libc_call("unshare", CLONE_NEWNET)
        report["network_namespace"] = True
    except OSError:
        pass
    try:
        _libc_call("unshare", CLONE_NEWNS)
        _libc_call("mount", None, b"/", None, MS_REC | MS_PRIVATE, None)
        report["mount_namespace"] = True
    except OSError:
        return report
    try:
        _mount_tmpfs(SCRATCH_ROOT, f"size={scratch_mb}m,mode=0755")
        for directory in MASKED_WRITABLE_DIRS:
            if os.path.isdir(directory):
                _mount_tmpfs(directory, "size=64k,mode=0755")
        report["private_tmp"] = True
        if report["uid_switch"]:
            expose_import_roots()
        _libc_call("mount", b"none", b"/", None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
        report["readonly_root"] = True
    except OSError:
        pass
    return report


# ---------------------------------------------------------------------------------------------
# In the child: everything up to running the program. Runs in the forked child only.


def _set_limit(kind: int, soft: int, hard: int | None = None) -> None:
    _, current_hard = resource.getrlimit(kind)
    wanted_hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        wanted_hard = min(wanted_hard, current_hard)
    resource.setrlimit(kind, (min(soft, wanted_hard), wanted_hard))


def current_address_space_bytes() -> int:
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def _apply_limits(limits: dict[str, Any], inherited_bytes: int) -> None:
    cpu_s = max(1, int(limits["cpu_s"] + 0.999))
    _set_limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    memory = limits["memory_mb"] << 20
    # A forked Python child already carries the interpreter's mappings (measured by the zygote
    # just before the fork: every page the child touches here would be a copy); the budget is on top.
    address_space = memory + inherited_bytes
    _set_limit(resource.RLIMIT_AS, address_space)
    _set_limit(resource.RLIMIT_STACK, min(memory, 64 << 20))
    _set_limit(resource.RLIMIT_FSIZE, limits["file_mb"] << 20)
    _set_limit(resource.RLIMIT_NOFILE, limits["open_files"])
    _set_limit(resource.RLIMIT_NPROC, limits["processes"])
    _set_limit(resource.RLIMIT_CORE, 0)


def _drop_privileges(uid: int) -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    # Set after the uid change, which clears it: the child dies with the zygote.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _enter_child(fds: dict[str, int], workdir: str, uid: int, limits: dict[str, Any], inherited_bytes: int) -> None:
    os.setsid()
    os.dup2(fds["stdin"], 0)
    os.dup2(fds["stdout"], 1)
    os.dup2(fds["stderr"], 2)
    os.dup2(fds["status"], _STATUS_FD)
    os.closerange(_STATUS_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    os.chdir(workdir)
    _apply_limits(limits, inherited_bytes)
    _drop_privileges(uid)


def _report_status(status: dict[str, Any]) -> None:
    status["pid"] = os.getpid()
    try:
        _write_all(_STATUS_FD, (json.dumps(status) + "\n").encode())
    except (OSError, ValueError):
        pass  # the program closed or broke its status channel; the zygote sees no status


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


def _run_python(source: str, call: dict[str, Any] | None, workdir: str) -> int:
    filename = os.path.join(workdir, "main.py")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    main_module = types.ModuleType("__main__")
    main_module.__file__ = filename
    main_module.__builtins__ = builtins
    sys.modules["__main__"] = main_module
    sys.argv = [filename]
    sys.path.insert(0, workdir)
    _install_std_streams()
    atexit._clear()
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        traceback.print_exception(type(exc), exc, None)
        _report_status({"phase": "compile", "error": type(exc).__name__})
        return 1
    exit_code = 0
    status: dict[str, Any] = {"phase": "done"}
    try:
        exec(code, main_module.__dict__)
        if call is not None:
            result = _resolve_callable(main_module.__dict__, call["fn_name"])(*call["args"])
            try:
                status["result_json"] = json.dumps(result)
            except (TypeError, ValueError):
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


def _child_main(job: dict[str, Any], fds: dict[str, int], workdir: str, uid: int) -> NoReturn:
    exit_code = 120
    try:
        in_process = job["argv"] is None
        _enter_child(fds, workdir, uid, job["limits"], job["inherited_bytes"] if in_process else 0)
        if in_process:
            exit_code = _run_python(job["source"], job["call"], workdir)
        else:
            for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            os.set_inheritable(_STATUS_FD, False)  # kept only to report a failed execve
            try:
                os.execve(job["argv"][0], job["argv"], dict(os.environ))
            except OSError as exc:
                _report_status({"phase": "exec", "error": f"{type(exc).__name__}: {exc}"})
                exit_code = 127
    except BaseException as exc:  # noqa: BLE001 - the child must never return into the zygote loop
        try:
            _report_status({"phase": "setup", "error": f"{type(exc).__name__}: {exc}"})
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(exit_code)


# ---------------------------------------------------------------------------------------------
# In the zygote: supervising one child.


def kill_uid_processes(uid: int) -> None:
    """SIGKILL every process running as `uid`, from a helper that takes that uid (kill(-1) spares only itself)."""
    helper = os.fork()
    if helper == 0:
        try:
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:  # noqa: BLE001 - ESRCH when nothing is left
            pass
        os._exit(0)
    os.waitpid(helper, 0)


class _Capture:
    """Output read from one pipe, keeping at most `keep` bytes and counting the rest."""

    def __init__(self, fd: int, keep: int) -> None:
        self.fd = fd
        self.keep = keep
        self.chunks: list[bytes] = []
        self.kept = 0
        self.total = 0
        self.closed = False

    def read_available(self) -> None:
        try:
            chunk = os.read(self.fd, _READ_CHUNK)
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

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


def _close_quietly(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _parse_status(raw: str, child_pid: int) -> dict[str, Any]:
    """The child's own status line: its last one, written after the program finished (lines the
    program forged earlier, or its forked children wrote, are skipped)."""
    for line in reversed(raw.splitlines()):
        try:
            status = json.loads(line)
        except ValueError:
            continue
        if isinstance(status, dict) and status.get("pid") == child_pid:
            return status
    return {}


class Zygote:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.uid: int = settings["uid"]
        self.max_output_bytes: int = settings["max_output_bytes"]
        self.program: dict[str, Any] | None = None
        self.counter = 0

    # -- directories --------------------------------------------------------------------------

    def _new_dir(self, prefix: str, owner_uid: int) -> str:
        self.counter += 1
        path = os.path.join(SCRATCH_ROOT, f"{prefix}-{self.counter}")
        os.mkdir(path, 0o700)
        if os.geteuid() == 0:
            os.chown(path, owner_uid, owner_uid)
        return path

    def prepare_work_dir(self) -> str:
        """The run directory, empty and the program uid's own. An empty one is kept, not recreated."""
        try:
            leftovers = os.listdir(WORK_DIR)
        except FileNotFoundError:
            leftovers = None
        if leftovers:
            shutil.rmtree(WORK_DIR, ignore_errors=True)
        if leftovers is None or leftovers:
            os.mkdir(WORK_DIR, 0o700)
            if os.geteuid() == 0:
                os.chown(WORK_DIR, self.uid, self.uid)
        else:
            os.chmod(WORK_DIR, 0o700)  # the program owns it and may have opened it up
        return WORK_DIR

    # -- one supervised child -----------------------------------------------------------------

    def execute(self, job: dict[str, Any], workdir: str) -> dict[str, Any]:
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        status_r, status_w = os.pipe()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _child_main(job, {"stdin": stdin_r, "stdout": stdout_w, "stderr": stderr_w, "status": status_w}, workdir, self.uid)
        _close_quietly(stdin_r, stdout_w, stderr_w, status_w)
        try:
            return self._supervise(pid, job, started, stdin_w, stdout_r, stderr_r, status_r)
        finally:
            _close_quietly(stdin_w, stdout_r, stderr_r, status_r)

    def _supervise(self, pid: int, job: dict[str, Any], started: float, stdin_w: int,
                   stdout_r: int, stderr_r: int, status_r: int) -> dict[str, Any]:
        limits = job["limits"]
        deadline = started + limits["wall_s"]
        stdout = _Capture(stdout_r, self.max_output_bytes)
        stderr = _Capture(stderr_r, _STDERR_KEEP_BYTES)
        status = _Capture(status_r, self.max_output_bytes)
        captures = {c.fd: c for c in (stdout, stderr, status)}
        pending_input = memoryview(job["stdin"].encode())
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        for fd in (stdin_w, stdout_r, stderr_r, status_r):
            os.set_blocking(fd, False)
        for fd in captures:
            poller.register(fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        if pending_input:
            poller.register(stdin_w, select.POLLOUT)
        else:
            _close_quietly(stdin_w)
        timed_out = output_limit = exited = False
        try:
            while not exited:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    timed_out = True
                    break
                for fd, events in poller.poll(remaining * 1000):
                    if fd == pidfd:
                        exited = True
                    elif fd == stdin_w:
                        pending_input = self._feed_input(poller, stdin_w, pending_input)
                    else:
                        captures[fd].read_available()
                        if captures[fd].closed:
                            poller.unregister(fd)
                if stdout.total > self.max_output_bytes:
                    output_limit = True
                    break
        finally:
            if not exited:
                _kill_child_and_group(pid)
            _, wait_status, usage = os.wait4(pid, 0)
            wall_s = time.perf_counter() - started
            os.close(pidfd)
            self._kill_leftovers(pid)
        self._drain(captures)
        return {
            "exit_code": os.waitstatus_to_exitcode(wait_status),
            "wall_s": wall_s,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "max_rss_kb": usage.ru_maxrss,
            "timed_out": timed_out,
            "output_limit": output_limit or stdout.total > self.max_output_bytes,
            "stdout": stdout.text(),
            "stdout_bytes": stdout.total,
            "stderr": stderr.text(),
            "status": _parse_status(status.text(), pid),
        }

    def _kill_leftovers(self, child_pid: int) -> None:
        """Kill and reap whatever the program left running (background children, escaped sessions).

        The zygote is a child subreaper, so every surviving descendant of the finished child is now
        (or sits below) a child of ours: when waitpid finds no child at all, nothing is left.
        """
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if os.geteuid() == 0:
            kill_uid_processes(self.uid)
        else:
            _kill_child_and_group(child_pid)
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return

    @staticmethod
    def _feed_input(poller: select.poll, stdin_w: int, pending: memoryview) -> memoryview:
        try:
            pending = pending[os.write(stdin_w, pending[:_READ_CHUNK]):]
        except BlockingIOError:
            return pending
        except BrokenPipeError:
            pending = pending[:0]  # the program closed its stdin; the rest is not needed
        if not pending:
            poller.unregister(stdin_w)
            _close_quietly(stdin_w)
        return pending

    @staticmethod
    def _drain(captures: dict[int, _Capture]) -> None:
        """Read what the (now dead) process tree left in the pipes."""
        deadline = time.perf_counter() + _DRAIN_TIMEOUT_S
        open_captures = [c for c in captures.values() if not c.closed]
        while open_captures and time.perf_counter() < deadline:
            ready, _, _ = select.select([c.fd for c in open_captures], [], [], deadline - time.perf_counter())
            for capture in open_captures:
                if capture.fd in ready:
                    capture.read_available()
            open_captures = [c for c in open_captures if not c.closed]

    # -- requests -----------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "load":
            return self._load(request)
        if op == "run":
            return self._run(request)
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _load(self, request: dict[str, Any]) -> dict[str, Any]:
        self._unload()
        language = request["language"]
        if language == "python":
            self.program = {"language": language, "source": request["source"], "argv": None}
            return {"ok": True, "compiled": True}
        compile_settings = request["compile"]
        program_dir = self._new_dir("program", self.uid)
        self.program = {"language": language, "dir": program_dir, "argv": [os.path.join(program_dir, "prog")]}
        source_path = os.path.join(program_dir, "main.cpp")
        with open(source_path, "w", encoding="utf-8") as handle:
            handle.write(request["source"])
        argv = [compile_settings["compiler"], *compile_settings["flags"], "-o", "prog", "main.cpp"]
        outcome = self.execute({"argv": argv, "stdin": "", "call": None, "limits": compile_settings["limits"],
                                "inherited_bytes": 0}, program_dir)
        compiled = outcome["exit_code"] == 0 and not outcome["timed_out"] and os.path.exists(self.program["argv"][0])
        if os.geteuid() == 0:
            # The program must not be able to change its own binary between tests.
            for name in os.listdir(program_dir):
                os.chown(os.path.join(program_dir, name), 0, 0)
            os.chown(program_dir, 0, 0)
            os.chmod(program_dir, 0o755)
        return {"ok": True, "compiled": compiled, "compile_output": outcome["stderr"] + outcome["status"].get("error", "")}

    def _unload(self) -> None:
        if self.program is not None and "dir" in self.program:
            shutil.rmtree(self.program["dir"], ignore_errors=True)
        self.program = None

    def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        inline = request.get("program")
        if inline is not None:
            # Python needs no build step: the source comes with each run, saving a round trip.
            if inline.get("language") != "python":
                return {"ok": False, "error": "only Python programs can come inline with a run"}
            self._unload()
            program: dict[str, Any] = {"argv": None, "source": inline["source"]}
        elif self.program is None:
            return {"ok": False, "error": "no program loaded"}
        else:
            program = self.program
        workdir = WORK_DIR  # emptied after every run (and at start-up)
        job = {
            "argv": program["argv"],
            "source": program.get("source"),
            "stdin": request["stdin"],
            "call": request["call"],
            "limits": request["limits"],
            "inherited_bytes": current_address_space_bytes(),
        }
        try:
            return {"ok": True, **self.execute(job, workdir)}
        finally:
            self.prepare_work_dir()  # nothing of this run stays for the next one


def _kill_child_and_group(pid: int) -> None:
    # The pid too: a child killed before its setsid() has no process group of its own yet.
    for kill in (os.kill, os.killpg):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _warm_up() -> None:
    for name in WARM_MODULES:
        __import__(name)
    # Objects that exist now are never collected; children then do not touch (and copy) their pages.
    gc.collect()
    gc.freeze()


def _move_protocol_off_std_fds() -> tuple[int, int]:
    requests_fd = os.dup(0)
    replies_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    return requests_fd, replies_fd


def main(argv: list[str]) -> int:
    settings = json.loads(argv[1])
    requests_fd, replies_fd = _move_protocol_off_std_fds()
    _libc_call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    isolation = establish_isolation(settings["scratch_mb"])
    # Inherited by every child: no execve (g++ included) can gain privileges.
    _libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    os.environ.clear()
    os.environ.update(PROGRAM_ENV)
    zygote = Zygote(settings)
    zygote.prepare_work_dir()
    _warm_up()
    _write_all(replies_fd, encode_message({"ok": True, "pid": os.getpid(), "isolation": isolation}))
    while (request := _read_request(requests_fd)) is not None:
        try:
            reply = zygote.handle(request)
        except Exception as exc:  # noqa: BLE001 - report instead of dying; the host restarts on repeats
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        _write_all(replies_fd, encode_message(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
