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
