"""Hostile programs: each gets the exact verdict, and the host is intact afterwards (see `host_intact`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tessy_core.verify import ExecutionLimits, Verdict
from tests.verify.conftest import FAST_LIMITS, alive, processes_of, run, start_sandbox

pytestmark = pytest.mark.usefixtures("host_intact")
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_fork_bomb_is_capped_by_the_process_limit(sandbox):
    # A generous time limit: on a loaded machine reaching the process cap can take seconds.
    result = run(sandbox, "import os\nwhile True:\n    os.fork()\n", limits=ExecutionLimits(time_limit_s=10))
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert "BlockingIOError" in result.message


def test_fork_bomb_that_swallows_errors_hits_the_time_limit(sandbox):
    source = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run(sandbox, source)
    assert result.verdict is Verdict.TIME_LIMIT


def test_memory_bomb_at_once(sandbox):
    result = run(sandbox, "block = bytearray(1 << 30)\nprint(len(block))\n")
    assert result.verdict is Verdict.MEMORY_LIMIT


def test_memory_bomb_that_grows(sandbox):
    result = run(sandbox, "chunks = []\nwhile True:\n    chunks.append(b'x' * (1 << 20))\n",
                 limits=ExecutionLimits(time_limit_s=2, memory_limit_mb=64))
    assert result.verdict is Verdict.MEMORY_LIMIT


def test_infinite_loop(sandbox):
    started = time.perf_counter()
    result = run(sandbox, "while True:\n    pass\n")
    assert result.verdict is Verdict.TIME_LIMIT
    assert time.perf_counter() - started < sandbox.config.wall_limit_s(FAST_LIMITS.time_limit_s) + 3


def test_sleeping_past_the_wall_limit(sandbox):
    started = time.perf_counter()
    result = run(sandbox, "import time\ntime.sleep(60)\nprint('woke')\n", [{"input": "", "output": "woke"}])
    elapsed = time.perf_counter() - started
    assert result.verdict is Verdict.TIME_LIMIT
    assert result.tests[0].message.startswith("wall time")
    assert elapsed < sandbox.config.wall_limit_s(FAST_LIMITS.time_limit_s) + 3


def test_output_flood_is_cut_off(sandbox):
    started = time.perf_counter()
    result = run(sandbox, "while True:\n    print('y' * 1000)\n")
    assert result.verdict is Verdict.WRONG_ANSWER
    assert "output limit" in result.message
    assert len(result.tests[0].stdout) <= sandbox.config.detail_chars + 64
    assert time.perf_counter() - started < 5


def test_background_child_that_outlives_the_program_is_killed(sandbox):
    source = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(120)\n"
        "    os._exit(0)\n"
        "print('done')\n"
    )
    result = run(sandbox, source, [{"input": "", "output": "done"}])
    assert result.verdict is Verdict.ACCEPTED
    # host_intact then asserts that no process of the program's uid survived


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[str]]]:
    """A TCP server on the host's loopback that records every connection it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, peer = server.accept()
            except TimeoutError:
                continue
            accepted.append(f"{peer[0]}:{peer[1]}")
            connection.sendall(b"hello\n")
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


CONNECT = """
import socket
port = int(input())
for host in ("127.0.0.1", "10.255.255.1"):
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            print("connected", conn.recv(16).decode().strip())
    except OSError as exc:
        print("blocked")
"""


def test_no_network_even_to_the_hosts_loopback(sandbox, loopback_server, tmp_path):
    port, accepted = loopback_server
    # The same program outside the sandbox does reach the server: the check below can fail.
    script = tmp_path / "connect.py"
    script.write_text(CONNECT.replace('"10.255.255.1"', ""))
    plain = subprocess.run([sys.executable, str(script)], input=f"{port}\n", capture_output=True, text=True,
                           timeout=30, check=True)
    assert plain.stdout.split("\n")[0] == "connected hello"
    assert len(accepted) == 1

    result = run(sandbox, CONNECT, [{"input": f"{port}\n", "output": "blocked\nblocked\n"}])
    assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout
    assert len(accepted) == 1, "the sandboxed program reached the host"


def test_socket_connect_without_handling_is_a_runtime_error(sandbox, loopback_server):
    port, accepted = loopback_server
    source = "import socket\nsocket.create_connection(('127.0.0.1', int(input())), timeout=2)\nprint('in')\n"
    result = run(sandbox, source, [{"input": f"{port}\n", "output": "in\n"}])
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert "OSError" in result.tests[0].stderr or "Error" in result.message
    assert accepted == []


ATTEMPT_WRITES = """
import sys
def attempt(path, mode="w"):
    try:
        with open(path, mode) as handle:
            handle.write("pwned")
        return "written"
    except OSError:
        return "denied"
targets = sys.stdin.read().split()
for path in targets:
    print(attempt(path))
print(attempt("mine.txt"))
print(attempt("/tmp/tessy-sandbox-probe"))
"""


@pytest.fixture
def host_dirs(tmp_path) -> Iterator[tuple[Path, Path]]:
    """A world-writable directory outside /tmp (only the read-only root protects it) and one under /tmp."""
    outside = Path(tempfile.mkdtemp(prefix="tessy-verify-", dir=REPO_ROOT))
    outside.chmod(0o777)
    inside_tmp = tmp_path / "world"
    inside_tmp.mkdir()
    inside_tmp.chmod(0o777)
    yield outside, inside_tmp
    shutil.rmtree(outside, ignore_errors=True)


def test_writing_outside_its_directory(sandbox, host_dirs):
    outside, inside_tmp = host_dirs
    victim = outside / "victim.txt"
    victim.write_text("original")
    victim.chmod(0o666)
    before = victim.stat()
    Path("/tmp/tessy-sandbox-probe").unlink(missing_ok=True)
    targets = [outside / "new.txt", victim, inside_tmp / "new.txt", REPO_ROOT / "pwned.txt", Path("/dev/shm/pwned")]
    stdin = "\n".join(str(path) for path in targets)
    # Host paths do not exist in its root; only its own /tmp (a fresh tmpfs, its working directory, which
    # /dev/shm points into) is writable.
    expected = "denied\n" * (len(targets) - 1) + "written\n" + "written\nwritten\n"
    result = run(sandbox, ATTEMPT_WRITES, [{"input": stdin, "output": expected}])
    assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout
    assert victim.read_text() == "original"
    assert victim.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert list(inside_tmp.iterdir()) == []
    assert not (REPO_ROOT / "pwned.txt").exists()
    assert not Path("/dev/shm/pwned").exists()
    assert not Path("/tmp/tessy-sandbox-probe").exists()


def test_file_size_limit(sandbox):
    source = "with open('big', 'wb') as f:\n    f.write(b'x' * (200 << 20))\nprint('ok')\n"
    result = run(sandbox, source, [{"input": "", "output": "ok"}],
                 limits=ExecutionLimits(time_limit_s=2, memory_limit_mb=512))
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert "File too large" in result.tests[0].stderr


SNOOP = """
import os, sys
secret = os.environ.get("TESSY_TEST_SECRET", "")
print("env", "leaked" if secret else "clean")
host, zygote, *paths = input().split()
for pid in (host, zygote):
    try:
        data = open(f"/proc/{pid}/environ", "rb").read()
        print("read", len(data))
    except OSError:
        print("denied")
for path in paths:
    try:
        print("read", open(path).read())
    except OSError:
        print("denied")
"""


def test_reading_the_parents_environment_and_secrets(monkeypatch, tmp_path):
    secret = "s3cr3t-value-0123456789"
    monkeypatch.setenv("TESSY_TEST_SECRET", secret)
    secret_file = tmp_path / "key"
    secret_file.write_text(secret)
    secret_file.chmod(0o644)  # even world-readable: not in the sandbox's file system
    home_secret = Path.home() / f".tessy-verify-secret-{os.getpid()}"
    home_secret.write_text(secret)
    home_secret.chmod(0o600)
    try:
        with start_sandbox() as pool:
            stdin = f"{os.getpid()} {pool.worker_pids()[0]} {secret_file} {home_secret}\n"
            result = run(pool, SNOOP, [{"input": stdin, "output": "env clean\ndenied\ndenied\ndenied\ndenied\n"}])
    finally:
        home_secret.unlink()
    assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr
    assert secret not in result.model_dump_json()


KILL_PARENT = """
import os, signal
host, zygote = map(int, input().split())
for target in (lambda: os.kill(zygote, signal.SIGKILL), lambda: os.killpg(zygote, signal.SIGKILL),
               lambda: os.kill(host, signal.SIGKILL), lambda: os.kill(os.getppid() or -12345, signal.SIGKILL)):
    try:
        target()
        print("killed")
    except (PermissionError, ProcessLookupError):
        print("denied")
"""


def test_killing_its_parent(sandbox):
    # Neither the zygote nor the host exists in the program's PID namespace.
    stdin = f"{os.getpid()} {sandbox.worker_pids()[0]}\n"
    result = run(sandbox, KILL_PARENT, [{"input": stdin, "output": "denied\ndenied\ndenied\ndenied\n"}])
    assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr
    assert alive(os.getpid())


def test_gaining_privileges(sandbox):
    source = "import os\ntry:\n    os.setuid(0)\n    print('root')\nexcept PermissionError:\n    print('denied')\nprint(os.getuid() != 0)\n"
    result = run(sandbox, source, [{"input": "", "output": "denied\nTrue\n"}])
    assert result.verdict is Verdict.ACCEPTED


def test_closing_stdout_before_writing(sandbox):
    result = run(sandbox, "import os\nos.close(1)\nprint('answer', flush=True)\n", [{"input": "", "output": "answer"}])
    assert result.verdict is Verdict.RUNTIME_ERROR


def test_closing_stdout_after_the_answer(sandbox):
    source = "import os, sys\nprint('answer')\nsys.stdout.flush()\nos.close(1)\nsum(range(10**5))\n"
    result = run(sandbox, source, [{"input": "", "output": "answer"}])
    assert result.verdict is Verdict.ACCEPTED


def test_closing_every_descriptor(sandbox):
    # The status channel goes too: the verdict must still come from the exit and the output.
    source = "import os, sys\nprint('answer')\nsys.stdout.flush()\nos.closerange(0, 64)\n"
    result = run(sandbox, source, [{"input": "", "output": "answer"}])
    assert result.verdict is Verdict.ACCEPTED


def test_deep_recursion_hits_the_recursion_limit(sandbox):
    result = run(sandbox, "def f(n):\n    return f(n + 1)\nf(0)\n")
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert "RecursionError" in result.message


def test_deep_recursion_past_the_c_stack(sandbox):
    # Recursion through a C builtin uses the C stack: with the recursion limit lifted it overflows.
    source = "import sys\nsys.setrecursionlimit(10**9)\ndef f(n):\n    return list(map(f, [n + 1]))\nf(0)\n"
    result = run(sandbox, source, limits=ExecutionLimits(time_limit_s=10, memory_limit_mb=512))
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert "SIGSEGV" in result.message


def test_program_ignoring_a_huge_stdin(sandbox):
    result = run(sandbox, "print('skip')\n", [{"input": "1 " * (4 << 20), "output": "skip"}])
    assert result.verdict is Verdict.ACCEPTED


def test_a_dead_worker_is_replaced_and_the_program_still_judged():
    with start_sandbox(workers=1) as pool:
        os.kill(pool.worker_pids()[0], 9)
        result = run(pool, "print(int(input()) * 2)\n", [{"input": "21\n", "output": "42\n"}])
        assert result.verdict is Verdict.ACCEPTED
        assert pool.restarts == 1
        uids = pool.program_uids()
    assert processes_of(uids) == []


def test_closing_the_sandbox_leaves_no_process(sandbox):
    pool = start_sandbox()
    workers = pool.worker_pids()
    pool.close()
    assert not any(alive(pid) for pid in workers)


def test_nothing_of_a_run_is_left_for_the_next_program_on_the_same_worker():
    with start_sandbox(workers=1) as pool:
        writer = "import os\nopen('left.txt', 'w').write('secret')\nos.mkdir('d')\nos.chmod('.', 0o777)\nprint('ok')\n"
        assert run(pool, writer, [{"input": "", "output": "ok"}]).verdict is Verdict.ACCEPTED
        reader = "import os\nprint(sorted(os.listdir('.')), oct(os.stat('.').st_mode & 0o777))\n"
        result = run(pool, reader, [{"input": "", "output": "[] 0o700"}])
        assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout
