"""Hostile programs against the verifier itself (issue 14): each mechanism that once let a program be
accepted without earning it, with its exact verdict, and the host checked afterwards (`host_intact`:
no process, cgroup member, System V IPC object or scratch file of a program uid is left).

Mechanisms: reading the hidden tests (/proc, host files, the build workspace); recovering an
earlier program or test from memory; float and integer tricks; CPU burnt by children it never
reaps; state carried between executions (SysV IPC, Unix sockets, files, keyrings); forged and
pathological output on the status channel.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessy_core.builder.workspace import BuildPlan, BuildWorkspace
from tessy_core.catalog.schema import PromptRecord
from tessy_core.cli import app
from tessy_core.verify import ExecutionLimits, Verdict
from tests.verify.conftest import FAST_LIMITS, run, start_sandbox

pytestmark = pytest.mark.usefixtures("host_intact")
REPO_ROOT = Path(__file__).resolve().parents[2]
needs_cxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed: C++ judging skipped")


@pytest.fixture
def open_dir():
    """A directory every uid can traverse (pytest's tmp_path sits below a 0700 one): files put here
    are readable by anyone on the host, so only the sandbox's own file system keeps them out."""
    directory = Path(tempfile.mkdtemp(prefix="tessy-hostile-", dir="/tmp"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def cpu_sandbox():
    """A pool with a generous wall limit: a tree over its CPU limit must be caught by CPU, whatever the load."""
    with start_sandbox(workers=1, wall_time_factor=10.0) as pool:
        yield pool


def _skip_if_unavailable(out: dict) -> None:
    if not out.get("ok") and "sandbox" in out.get("error", "") and (
            "isolat" in out["error"] or "cgroup" in out["error"] or "root" in out["error"]):
        pytest.skip(f"sandbox unavailable here: {out['error']}")


def call(fn_name, args, expected):
    return {"kind": "call", "fn_name": fn_name, "args": args, "expected": expected}


# ---------------------------------------------------------------------------------------------
# 1. No secret enters the sandbox.

STEAL_TESTS = """
import json, os
found = None
for pid in os.listdir("/proc"):
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
    except OSError:
        continue
    if b"--tests" in argv:
        found = argv[argv.index(b"--tests") + 1].decode()
for path in filter(None, [found, GUESSED]):
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        continue
    print(json.loads(text)[-1]["output"] if path.endswith(".json") else text.split("EXPECTED=")[1].split()[0])
    break
else:
    print("nothing")
"""


def test_the_cli_tests_file_is_out_of_reach(tmp_path, open_dir):
    # The tests file is named on the CLI's own command line, and world-readable.
    answer = f"ANSWER-{secrets.token_hex(8)}"
    tests = open_dir / "tests.json"
    tests.write_text(json.dumps([{"input": "", "output": answer, "hidden": True}]))
    tests.chmod(0o644)
    code = tmp_path / "main.py"
    code.write_text(f"GUESSED = {str(tests)!r}\n" + STEAL_TESTS)
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "tessy"), "sandbox", "run", "--code", str(code), "--tests", str(tests),
         "--time-limit", "2", "--json"], capture_output=True, text=True, timeout=120, check=False)
    out = json.loads(completed.stdout)
    _skip_if_unavailable(out)
    assert out["ok"] and out["verdict"] == "wrong_answer", out
    assert out["tests"][0]["stdout"] == "nothing\n"


def test_proc_shows_only_the_programs_own_namespace(sandbox):
    source = (
        "import os\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        "print(sorted(p for p in os.listdir('/proc') if not p.isdigit()))\n"
        "for pid in input().split():\n"
        "    try:\n"
        "        open(f'/proc/{pid}/cmdline', 'rb').read()\n"
        "        print('visible')\n"
        "    except OSError:\n"
        "        print('hidden')\n"
    )
    stdin = f"{os.getpid()} {sandbox.worker_pids()[0]}\n"
    result = run(sandbox, source, [{"input": stdin, "output": "[1]\n['self', 'thread-self']\nhidden\nhidden\n"}])
    assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr


RUNTIME_ONLY = """
import json, os
allowed = json.loads(input())
extra = {d: sorted(set(os.listdir(d)) - set(names)) for d, names in allowed.items()}
print(json.dumps({d: names for d, names in extra.items() if names}))
present = [p for p in ("/work", "/home", "/var", "/sys", "/run", "/mnt", "/opt", "/srv", "/etc/shadow",
                       "/etc/ssh", "/root/.ssh", "/root/.cache", "/etc/machine-id", "/usr/local", "/usr/src")
           if os.path.lexists(p)]
print(present)
"""


def test_the_file_system_holds_only_what_the_runtimes_need(sandbox):
    allowed = {"/": ["bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "prog", "proc", "root", "sbin", "tmp",
                     "usr"],
               "/etc": ["passwd", "group", "hostname", "hosts", "ld.so.cache", "ld.so.conf", "alternatives"],
               "/dev": ["null", "zero", "full", "random", "urandom", "fd", "stdin", "stdout", "stderr", "shm"],
               "/usr": ["bin", "lib", "lib32", "lib64", "libx32", "libexec", "include", "share"],
               "/usr/share": ["zoneinfo"], "/tmp": []}
    result = run(sandbox, RUNTIME_ONLY, [{"input": json.dumps(allowed) + "\n", "output": "{}\n[]\n"}])
    assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr


def _required_plan_fields() -> dict[str, object]:
    values = {"build_id": "b1", "dataset": "d", "config_hash": "h", "samples_per_prompt": 1, "shards": []}
    return {**values, **{name: "x" for name, field in BuildPlan.model_fields.items()
                         if field.is_required() and name not in values}}


def test_the_build_workspace_is_private_and_out_of_reach(sandbox, open_dir):
    answer = f"ANSWER-{secrets.token_hex(8)}"
    prompt = PromptRecord(source="hostile", statement="Print the answer.",
                          tests=[{"kind": "stdio", "input": "", "output": f"EXPECTED={answer}", "hidden": True}])
    workspace = BuildWorkspace(open_dir / "builds", "b1")
    workspace.freeze_plan(BuildPlan(**_required_plan_fields()), [prompt])
    prompts = workspace.dir / "prompts.jsonl"
    assert answer in prompts.read_text()
    assert (workspace.dir.stat().st_mode & 0o777, prompts.stat().st_mode & 0o777) == (0o700, 0o600)
    # Even opened up to the world, the file is not in the sandbox's file system.
    (open_dir / "builds").chmod(0o755)
    workspace.dir.chmod(0o755)
    prompts.chmod(0o644)
    result = run(sandbox, f"GUESSED = {str(prompts)!r}\n" + STEAL_TESTS, [{"input": "", "output": answer}])
    assert result.verdict is Verdict.WRONG_ANSWER and result.tests[0].stdout == "nothing\n"


@needs_cxx
def test_a_cpp_program_cannot_read_the_tests_either(sandbox, open_dir):
    answer = f"ANSWER-{secrets.token_hex(8)}"
    secret = open_dir / "prompts.jsonl"
    secret.write_text(f"EXPECTED={answer}\n")
    secret.chmod(0o644)
    source = ("#include <cstdio>\nint main(){ char buf[256] = {0}; FILE *f = fopen(\"" + str(secret) + "\", \"r\");\n"
              "  if (!f) { puts(\"nothing\"); return 0; } fread(buf, 1, 255, f); printf(\"%s\", buf + 9); }\n")
    result = run(sandbox, source, [{"input": "", "output": answer}], limits=ExecutionLimits(time_limit_s=2),
                 language="cpp")
    assert result.verdict is Verdict.WRONG_ANSWER and result.tests[0].stdout == "nothing\n"


# ---------------------------------------------------------------------------------------------
# 2. No carry-over: no execution ever holds another one's bytes.

PREFIX = "TESSY-LEAK-PREFIX:"
SCAN_MEMORY = """
import ctypes, hashlib
wanted = input().split()
prefix = bytes(reversed(b"%s"))
found = set()
for line in open("/proc/self/maps").read().splitlines():
    fields = line.split()
    name = fields[5] if len(fields) > 5 else ""
    if fields[1][0] != "r" or name.startswith("/") or name.startswith("[v"):
        continue  # anonymous memory, heap and stack: where a forked interpreter's data lives
    start, end = (int(x, 16) for x in fields[0].split("-"))
    data = ctypes.string_at(start, end - start)
    at = data.find(prefix)
    while at >= 0:
        digest = hashlib.sha256(data[at + len(prefix): at + len(prefix) + 32]).hexdigest()
        if digest in wanted:
            found.add(wanted.index(digest))
        at = data.find(prefix, at + 1)
print(sorted(found) if found else "clean")
""" % PREFIX[::-1].encode().decode()


def test_a_later_program_cannot_recover_an_earlier_program_or_test_from_memory():
    # The needle is only ever held as a prefix plus the sha256 of what follows it, so the scanning
    # program's own memory cannot match by accident. The earlier program's source, input and output
    # are large (the allocator keeps such blocks around), and its expected output must never
    # have entered any sandbox process at all.
    source_secret, input_secret, printed_secret, expected_secret = (secrets.token_hex(16) for _ in range(4))
    padding = "#" * 20_000
    earlier = (f"SECRET = {PREFIX + source_secret!r}\n{padding}\nimport sys\ndata = sys.stdin.read()\n"
               f"print(({PREFIX + printed_secret!r} + ' ') * 3000)\n")
    with start_sandbox(workers=1) as pool:
        first = run(pool, earlier, [{"input": (PREFIX + input_secret + " ") * 1000,
                                     "output": PREFIX + expected_secret}])
        assert first.verdict is Verdict.WRONG_ANSWER
        hashes = " ".join(hashlib.sha256(s.encode()).hexdigest()
                          for s in (source_secret, input_secret, printed_secret, expected_secret))
        for _ in range(2):  # the next execution on the same worker, and one after it
            result = run(pool, SCAN_MEMORY, [{"input": hashes + "\n", "output": "clean"}],
                         limits=ExecutionLimits(time_limit_s=5, memory_limit_mb=512))
            assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr


def test_the_memory_scan_finds_what_it_is_given(sandbox):
    # The probe works: a secret in the program's own input is found (so "clean" above means clean).
    secret = secrets.token_hex(16)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    source = "held = input()\n" + SCAN_MEMORY.replace("wanted = input().split()", f"wanted = [{digest!r}]")
    result = run(sandbox, source, [{"input": PREFIX + secret + "\n", "output": "[0]"}],
                 limits=ExecutionLimits(time_limit_s=5, memory_limit_mb=512))
    assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr


# ---------------------------------------------------------------------------------------------
# 3. Float and integer tricks.

@pytest.mark.parametrize("printed, verdict", [
    ("1000001.0", Verdict.WRONG_ANSWER), ("1000000.0", Verdict.WRONG_ANSWER), ("1e6", Verdict.WRONG_ANSWER),
    ("999999.9999999", Verdict.WRONG_ANSWER), ("+1000000", Verdict.ACCEPTED), ("1000000", Verdict.ACCEPTED),
])
def test_an_integer_answer_compares_exactly(sandbox, printed, verdict):
    result = run(sandbox, f"print({printed!r})\n", [{"input": "", "output": "1000000\n"}])
    assert result.verdict is verdict


def test_an_honest_float_error_passes_where_the_expected_answer_is_a_float(sandbox):
    assert run(sandbox, "print(0.1 + 0.2)\n", [{"input": "", "output": "0.3\n"}]).verdict is Verdict.ACCEPTED
    assert run(sandbox, "print(0.31)\n", [{"input": "", "output": "0.3\n"}]).verdict is Verdict.WRONG_ANSWER


@pytest.mark.parametrize("returned, expected, verdict", [
    ("1000999.0", 1000000, Verdict.WRONG_ANSWER), ("1000000.0", 1000000, Verdict.WRONG_ANSWER),
    ("True", 1, Verdict.WRONG_ANSWER), ("'1000000'", 1000000, Verdict.WRONG_ANSWER),
    ("[1.0, 2]", [1, 2], Verdict.WRONG_ANSWER), ("0.1 + 0.2", 0.3, Verdict.ACCEPTED),
    ("10 ** 30", 10 ** 30, Verdict.ACCEPTED),
])
def test_a_call_result_compares_by_type_and_value(sandbox, returned, expected, verdict):
    result = run(sandbox, f"def f():\n    return {returned}\n", [call("f", [], expected)])
    assert result.verdict is verdict, result.message


# ---------------------------------------------------------------------------------------------
# 4. The whole tree's CPU time counts.

UNREAPED_BURNERS = """
import os, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        while time.process_time() < 0.3:
            pass
        os._exit(0)
    children.append(pid)
# Never reaped: wait until every child is a zombie, then answer.
while any(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z" for pid in children):
    time.sleep(0.005)
print("done")
"""


def test_cpu_burnt_by_unreaped_children_counts(cpu_sandbox):
    # 4 x 0.3 s of CPU in children it never waits for: 1.2 s for the tree, over the 1 s limit, whatever the load.
    result = run(cpu_sandbox, UNREAPED_BURNERS, [{"input": "", "output": "done"}], limits=ExecutionLimits(time_limit_s=1))
    assert result.verdict is Verdict.TIME_LIMIT, result.tests[0]
    # The reported CPU is the tree's (killed at the limit, or over it when it finished first).
    assert result.tests[0].message.startswith("CPU time of the process tree") and result.tests[0].cpu_s >= 1.0


def test_a_daemon_left_burning_cpu_is_gone_with_the_program(sandbox):
    source = ("import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        while True:\n"
              "            pass\n    os._exit(0)\nprint('answer')\n")
    result = run(sandbox, source, [{"input": "", "output": "answer"}])
    assert result.verdict is Verdict.ACCEPTED, result.tests[0]
    assert result.tests[0].cpu_s < 0.5


def test_a_cpu_bound_loop_with_io_calls_is_a_time_limit_every_time(cpu_sandbox):
    source = ("import os, sys, time\nn = 0\nwhile True:\n    os.stat('/tmp')\n    time.time()\n    n += 1\n"
              "    if n % 1000 == 0:\n        sys.stderr.write('.')\n")
    for _ in range(3):
        result = run(cpu_sandbox, source)
        assert result.verdict is Verdict.TIME_LIMIT, result.tests[0]
        assert result.tests[0].message.startswith("CPU time of the process tree"), result.tests[0].message
        assert result.tests[0].cpu_s >= FAST_LIMITS.time_limit_s


def test_a_starved_program_ends_on_its_cpu_limit_not_on_the_wall_clock(sandbox):
    # Three busy processes share one CPU with the program: it waits for the CPU most of the time and
    # reaches 0.5 s of CPU only after the 1.5 s wall limit. That wait is load, not the program's doing.
    cpu = sorted(os.sched_getaffinity(0))[0]
    hog = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nprint(flush=True)\nwhile True:\n    pass\n"
    # Each in a session of its own, as the program is: the scheduler weighs them one by one (autogroups).
    hogs = [subprocess.Popen([sys.executable, "-S", "-c", hog], stdout=subprocess.PIPE, start_new_session=True)
            for _ in range(3)]
    try:
        for process in hogs:
            process.stdout.readline()  # busy on that CPU from now on
        result = run(sandbox, hog)
    finally:
        for process in hogs:
            process.kill()
            process.wait()
    assert result.verdict is Verdict.TIME_LIMIT, result.tests[0]
    assert result.tests[0].message.startswith("CPU time of the process tree"), result.tests[0].message
    assert result.tests[0].wall_s > sandbox.config.wall_limit_s(FAST_LIMITS.time_limit_s)


# ---------------------------------------------------------------------------------------------
# 5. Nothing carries over between executions.

SYSV_WRITE = """
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shm = libc.shmget(0x7E5514, 4096, 0o1000 | 0o666)
address = libc.shmat(shm, None, 0)
ctypes.memmove(address, b"covert", 6)
print(libc.msgget(0x7E5515, 0o1000 | 0o666) >= 0, libc.semget(0x7E5516, 1, 0o1000 | 0o666) >= 0)
if os.fork() == 0:
    time.sleep(60)  # keeps the segment attached, if it could outlive the program
"""
SYSV_READ = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print([libc.shmget(0x7E5514, 0, 0), libc.msgget(0x7E5515, 0), libc.semget(0x7E5516, 0, 0)])
"""


def test_system_v_ipc_does_not_survive_the_execution():
    with start_sandbox(workers=1) as pool:
        assert run(pool, SYSV_WRITE, [{"input": "", "output": "True True"}]).verdict is Verdict.ACCEPTED
        result = run(pool, SYSV_READ, [{"input": "", "output": "[-1, -1, -1]"}])
        assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr


ABSTRACT_BIND = """
import os, socket, time
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind("\\0tessy-covert")
server.listen(1)
if os.fork() == 0:
    time.sleep(60)
print("bound")
"""
ABSTRACT_CONNECT = """
import socket
for address in ("\\0tessy-covert", input().strip()):
    try:
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(address)
        print("connected")
    except OSError:
        print("none")
"""


def test_unix_sockets_reach_neither_earlier_executions_nor_the_host(tmp_path):
    host_socket = tmp_path / "host.sock"
    tmp_path.chmod(0o777)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(host_socket))
    host_socket.chmod(0o777)
    server.listen(4)
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        # The same program outside the sandbox does reach the host's socket: the check can fail.
        plain = subprocess.run([sys.executable, "-c", ABSTRACT_CONNECT], input=f"{host_socket}\n",
                               capture_output=True, text=True, timeout=30, check=True)
        assert plain.stdout.split() == ["none", "connected"]
        seen = len(accepted)
        with start_sandbox(workers=1) as pool:
            assert run(pool, ABSTRACT_BIND, [{"input": "", "output": "bound"}]).verdict is Verdict.ACCEPTED
            result = run(pool, ABSTRACT_CONNECT, [{"input": f"{host_socket}\n", "output": "none\nnone\n"}])
            assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr
        assert len(accepted) == seen
    finally:
        stop.set()
        thread.join()
        server.close()


def test_files_do_not_survive_the_execution():
    writer = ("import os\nfor path in ('/tmp/left', '/dev/shm/sem.left', 'here'):\n    open(path, 'w').write('x')\n"
              "os.mkfifo('/tmp/fifo')\nprint('ok')\n")
    reader = "import os\nprint(sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')), os.listdir('/prog'))\n"
    with start_sandbox(workers=1) as pool:
        assert run(pool, writer, [{"input": "", "output": "ok"}]).verdict is Verdict.ACCEPTED
        result = run(pool, reader, [{"input": "", "output": "[] [] []"}])
        assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr


def test_memory_an_execution_used_is_not_charged_to_the_next():
    # 180 MB of files in its /tmp (charged to the tree's memory), then a program that needs 190 MB.
    writer = "for i in range(6):\n    open(f'/tmp/f{i}', 'wb').write(b'x' * (30 << 20))\nprint('ok')\n"
    needy = "block = bytearray(190 << 20)\nprint('ok')\n"
    limits = ExecutionLimits(time_limit_s=5, memory_limit_mb=256)
    with start_sandbox(workers=1) as pool:
        for _ in range(2):
            assert run(pool, writer, [{"input": "", "output": "ok"}], limits=limits).verdict is Verdict.ACCEPTED
            result = run(pool, needy, [{"input": "", "output": "ok"}], limits=limits)
            assert result.verdict is Verdict.ACCEPTED, result.message


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers of x86_64")
def test_kernel_keyrings_and_the_hostname_are_out_of_reach(sandbox):
    source = (
        "import ctypes, socket\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "key = libc.syscall(248, b'user', b'tessy-covert', b'x', 1, -4)\n"  # add_key to the user keyring
        "print(key, ctypes.get_errno() == 1)\n"
        "print(libc.syscall(250, 0, -4, 0, 0, 0), ctypes.get_errno() == 1)\n"  # keyctl(GET_KEYRING_ID)
        "print(libc.sethostname(b'covert', 6), socket.gethostname())\n"
        "print(libc.syscall(272, 0x40000000))\n"  # unshare(CLONE_NEWNET)
    )
    expected = "-1 True\n-1 True\n-1 sandbox\n-1\n"
    result = run(sandbox, source, [{"input": "", "output": expected}])
    assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr


# ---------------------------------------------------------------------------------------------
# 6. Nothing the program writes is trusted beyond its stdout and exit status.

def _forge(line: str) -> str:
    data = (line + "\n").encode()
    return f"import os\nos.write(3, {data!r})\n"


def test_a_forged_setup_failure_is_not_a_sandbox_error(sandbox):
    source = _forge('{"pid": 1, "phase": "setup", "error": "OSError"}') + "print(42, flush=True)\nos._exit(0)\n"
    assert run(sandbox, source, [{"input": "", "output": "42"}]).verdict is Verdict.ACCEPTED
    source = _forge('{"pid": 1, "phase": "setup", "error": "OSError"}') + "os._exit(3)\n"
    result = run(sandbox, source, [{"input": "", "output": "42"}])
    assert result.verdict is Verdict.RUNTIME_ERROR and result.message == "OSError (exit code 3)"  # wording only


@pytest.mark.parametrize("line, verdict", [
    ("[" * 100_000, Verdict.RUNTIME_ERROR),  # RecursionError in a naive parser
    ('{"pid": 1, "phase": "done", "result_json": 5}', Verdict.RUNTIME_ERROR),  # not a string
    ('{"pid": 1, "phase": "done", "result_json": "' + "7" * 5000 + '"}', Verdict.WRONG_ANSWER),  # 5000 digits
    ('{"pid": 1, "phase": "done", "result_json": "' + "[" * 100_000 + '"}', Verdict.WRONG_ANSWER),
    ('{"pid": 1, "phase": "done", "result_json": "\\\\ud800"}', Verdict.WRONG_ANSWER),
    ('{"pid": 1, "phase": "done", "result_json": "NaN"}', Verdict.WRONG_ANSWER),
])
def test_pathological_status_lines(sandbox, line, verdict):
    source = _forge(line) + "os._exit(0)\ndef f():\n    return 1\n"
    result = run(sandbox, source, [call("f", [], 1)])
    assert result.verdict is verdict, result.message


def test_a_status_flood_is_cut_off(sandbox):
    source = "import os\nblock = b'x' * (1 << 20)\nwhile True:\n    os.write(3, block)\n"
    result = run(sandbox, source, [call("f", [], 1)])
    assert result.verdict is Verdict.WRONG_ANSWER and "output limit" in result.message


def test_invalid_utf8_everywhere(sandbox):
    source = "import os\nos.write(1, b'\\xff\\xfe 42 \\xc3')\nos.write(2, b'\\xff' * 100)\nos.write(3, b'\\xff\\n')\n"
    result = run(sandbox, source, [{"input": "", "output": "42"}])
    assert result.verdict is Verdict.WRONG_ANSWER and result.message == "output differs"


def test_the_setup_channel_and_the_request_are_closed_before_the_program_runs(sandbox):
    source = ("import os\nfor fd in (4, 5):\n    try:\n        os.write(fd, b'Eforged')\n        print('open')\n"
              "    except OSError:\n        print('closed')\nprint(sorted(int(fd) for fd in os.listdir('/proc/self/fd'))[:4])\n")
    result = run(sandbox, source, [{"input": "", "output": "closed\nclosed\n[0, 1, 2, 3]"}])
    assert result.verdict is Verdict.ACCEPTED, result.tests[0].stdout + result.tests[0].stderr


def test_the_cli_survives_a_forged_result_of_the_wrong_type(tmp_path):
    program = tmp_path / "main.py"
    program.write_text(_forge('{"pid": 1, "phase": "done", "result_json": {"a": 1}, "exit_code": "x"}')
                       + "os._exit(0)\ndef f():\n    return 1\n")
    tests = tmp_path / "t.json"
    tests.write_text(json.dumps([call("f", [], 1)]))
    result = CliRunner().invoke(app, ["sandbox", "run", "--code", str(program), "--tests", str(tests), "--json"])
    out = json.loads(result.stdout)
    _skip_if_unavailable(out)
    assert (result.exit_code, out["ok"], out["verdict"]) == (0, True, "runtime_error"), out
