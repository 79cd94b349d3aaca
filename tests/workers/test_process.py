"""Telling a recorded server process from a later one that reuses its pid."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from tessy_core.workers.process import WorkerRecord, group_members, leader_is_alive, start_ticks


@pytest.fixture
def sleeper(tmp_path):
    cmdline = [sys.executable, "-c", "import time; time.sleep(60)"]
    process = subprocess.Popen(cmdline, start_new_session=True)
    record = WorkerRecord(
        name="sleeper", pid=process.pid, url="http://127.0.0.1:1", cmdline=cmdline,
        start_ticks=start_ticks(process.pid), started_at=time.time(), log_path=tmp_path / "sleeper.log",
    )
    yield process, record
    process.kill()
    process.wait()


def test_a_live_process_is_recognised_even_when_the_wall_clock_moves(sleeper, monkeypatch):
    _, record = sleeper
    assert leader_is_alive(record) and group_members(record)
    # A stepped wall clock moves the boot time psutil adds to start times; the record must not care.
    real_boot_time = psutil.boot_time()
    monkeypatch.setattr(psutil, "boot_time", lambda: real_boot_time + 1.0)
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: real_boot_time + 1.0)
    assert leader_is_alive(record) and group_members(record)


def test_a_reused_pid_is_not_ours_and_a_dead_one_is_gone(sleeper):
    process, record = sleeper
    other = record.model_copy(update={"start_ticks": record.start_ticks - 1})
    assert not leader_is_alive(other) and group_members(other) == []
    process.kill()
    process.wait()
    assert not leader_is_alive(record)
    with pytest.raises(psutil.NoSuchProcess):
        start_ticks(process.pid)


def test_a_server_launched_on_cores_runs_there_with_its_children_and_binds_its_threads(tmp_path):
    """`launch` pins the server's process tree to its cores and tells vLLM to bind its compute
    threads to the same cores. The stand-in "python" of a fake venv starts its child after a
    moment, as a vLLM server starts its engine processes only after seconds of imports."""
    import os

    from tessy_core.workers.config import OMP_BIND, ServerSpec
    from tessy_core.workers.process import launch

    core = sorted(os.sched_getaffinity(0))[-1]
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake_python = venv / "bin" / "python"
    fake_python.write_text(
        f"#!{sys.executable}\nimport subprocess, time\ntime.sleep(0.5)\nsubprocess.Popen(['sleep', '60'])\ntime.sleep(60)\n"
    )
    fake_python.chmod(0o755)
    spec = ServerSpec(name="pinned", model_path="m", port=9, venv=venv)
    process, record = launch(spec, tmp_path / "pinned.log", cores=[core])
    try:
        deadline = time.monotonic() + 10
        while not psutil.Process(process.pid).children() and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        assert len(tree) >= 2
        assert all(p.cpu_affinity() == [core] for p in tree)
        assert psutil.Process(process.pid).environ()[OMP_BIND] == str(core)
    finally:
        os.killpg(process.pid, 9)
        process.wait()
