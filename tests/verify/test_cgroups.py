"""Finding the cgroup hierarchy: this host's, and clear refusals where limits could not hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessy_core.verify import SandboxUnavailable, cgroups


def test_this_hosts_hierarchy_has_every_controller_the_sandbox_needs():
    try:
        version, dirs = cgroups.locate()
    except SandboxUnavailable as exc:
        pytest.skip(f"no usable cgroups here: {exc}")
    assert version in (1, 2)
    needed = ("memory", "pids", "cpuacct") if version == 1 else ("",)
    assert set(needed) <= set(dirs) and all(Path(d, "cgroup.procs").exists() for d in dirs.values())


def _fake(monkeypatch, mounts, own):
    monkeypatch.setattr(cgroups, "_mounts", lambda: mounts)
    monkeypatch.setattr(cgroups, "_own_paths", lambda: own)


def test_v2_without_memory_and_pids_is_refused_with_the_reason(monkeypatch, tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "cgroup.controllers").write_text("cpu io\n")
    _fake(monkeypatch, [("/", str(tmp_path), "cgroup2", {"rw"})], {"": "/job"})
    with pytest.raises(SandboxUnavailable, match="lacks the memory and pids controller"):
        cgroups.locate()


def test_v2_with_delegated_controllers_is_used(monkeypatch, tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "cgroup.controllers").write_text("cpu io memory pids\n")
    _fake(monkeypatch, [("/", str(tmp_path), "cgroup2", {"rw"})], {"": "/job"})
    assert cgroups.locate() == (2, {"": tmp_path / "job"})


def test_v1_hierarchies_under_a_namespaced_root(monkeypatch, tmp_path):
    mounts = [("/outer", str(tmp_path / c), "cgroup", {"rw", c}) for c in ("memory", "pids", "cpuacct")]
    _fake(monkeypatch, mounts, {"memory": "/outer/job", "pids": "/outer", "cpuacct": "/outer/job", "": "/"})
    version, dirs = cgroups.locate()
    assert version == 1
    assert dirs == {"memory": tmp_path / "memory" / "job", "pids": tmp_path / "pids",
                    "cpuacct": tmp_path / "cpuacct" / "job"}


def test_no_hierarchy_is_refused(monkeypatch):
    _fake(monkeypatch, [], {})
    with pytest.raises(SandboxUnavailable, match="no cgroup hierarchy"):
        cgroups.locate()
