"""How `tessy workers` pins CPU servers to cores."""

from __future__ import annotations

import pytest

from tessy_core.workers.config import OMP_BIND, ServerSpec, WorkersConfig


def _config(*names: str, **env_of: dict[str, str]) -> WorkersConfig:
    return WorkersConfig(
        servers=[ServerSpec(name=n, model_path="m", port=9000 + i, env=env_of.get(n, {})) for i, n in enumerate(names)]
    )


@pytest.fixture(autouse=True)
def _no_binding_in_the_environment(monkeypatch):
    monkeypatch.delenv(OMP_BIND, raising=False)


def test_several_cpu_servers_get_disjoint_cores():
    config = _config("teacher", "student")
    assert [config.cpu_cores(s, cores=[0, 1]) for s in config.servers] == [[0], [1]]
    assert [config.cpu_cores(s, cores=range(8)) for s in config.servers] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_more_servers_than_cores_take_one_core_each_in_turn_and_one_server_keeps_vllms_choice():
    three = _config("a", "b", "c")
    assert [three.cpu_cores(s, cores=[0, 1]) for s in three.servers] == [[0], [1], [0]]
    one = _config("only")
    assert one.cpu_cores(one.servers[0], cores=[0, 1]) is None


def test_a_binding_the_user_named_is_kept(monkeypatch):
    config = _config("teacher", "student", teacher={OMP_BIND: "1"})
    # The named one is left alone, and the other is the only server left to place.
    assert [config.cpu_cores(s, cores=[0, 1]) for s in config.servers] == [None, None]
    monkeypatch.setenv(OMP_BIND, "nobind")
    pair = _config("a", "b")
    assert pair.cpu_cores(pair.servers[0], cores=[0, 1]) is None


def test_several_api_processes_are_a_gpu_option():
    with pytest.raises(ValueError, match="api_servers only apply to flavor 'gpu'"):
        ServerSpec(name="s", model_path="m", port=9000, api_servers=2)
    one = ServerSpec(name="s", model_path="m", port=9000, flavor="gpu").command()
    assert "vllm.entrypoints.openai.api_server" in one and "--api-server-count" not in one
