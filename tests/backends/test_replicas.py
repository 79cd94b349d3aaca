"""Routing, health and backoff of `ReplicaSet`, without servers."""

from __future__ import annotations

import asyncio
import random

import pytest

from tessy_core.backends.replicas import Replica, ReplicaSet, RetryPolicy

URLS = [f"http://10.0.0.{i}:8000/v1" for i in range(1, 5)]


def _probe_returning(ok: bool, calls: list[str] | None = None):
    async def probe(replica: Replica) -> bool:
        if calls is not None:
            calls.append(replica.base_url)
        return ok

    return probe


def make_set(urls=URLS, *, probe_ok: bool = True, cooldown_s: float = 60.0, calls=None) -> ReplicaSet:
    return ReplicaSet(urls, probe=_probe_returning(probe_ok, calls), probe_cooldown_s=cooldown_s, rng=random.Random(0))


async def test_same_key_same_replica_and_keys_spread():
    replicas = make_set()
    keys = [f"sample-{i}" for i in range(200)]
    first = {key: replicas.choose(key) for key in keys}
    assert all(replicas.choose(key) is first[key] for key in keys)
    per_replica = {r.base_url: sum(1 for chosen in first.values() if chosen is r) for r in replicas.replicas}
    assert min(per_replica.values()) > 20, per_replica


async def test_new_keys_go_to_the_least_loaded_replica_and_stay_there_when_load_shifts():
    replicas = make_set(URLS[:3])
    a, b, c = replicas.replicas
    with replicas.attempt(a), replicas.attempt(a), replicas.attempt(b):
        assert replicas.choose("new-1") is c
        with replicas.attempt(c), replicas.attempt(c):
            assert replicas.choose("new-2") is b
            # An existing sample keeps its replica (its prefix cache) although c is now the busiest.
            assert replicas.choose("new-1") is c
    assert replicas.pinned_replica("new-1") is c and replicas.pinned_replica("new-2") is b


async def test_a_burst_of_new_samples_spreads_evenly():
    replicas = make_set(URLS[:2])
    held = []
    for i in range(10):
        chosen = replicas.choose(f"s{i}")
        cm = replicas.attempt(chosen)  # the request is in flight before the next sample starts
        cm.__enter__()
        held.append(cm)
    assert [r.in_flight for r in replicas.replicas] == [5, 5]
    for cm in held:
        cm.__exit__(None, None, None)


async def test_only_keys_of_a_failed_replica_move_and_they_stay_moved():
    replicas = make_set()
    keys = [f"sample-{i}" for i in range(200)]
    before = {key: replicas.choose(key) for key in keys}
    down = replicas.replicas[0]
    replicas.record_failure(down, "refused", replica_down=True, will_retry=True)
    during = {key: replicas.choose(key) for key in keys}
    assert all(chosen is not down for chosen in during.values())
    assert all(during[k] is before[k] for k in keys if before[k] is not down)
    replicas.record_success(down, prompt_tokens=1, completion_tokens=1)
    # The moved samples' prefixes are cached on their new replica now: they do not move back.
    assert {key: replicas.choose(key) for key in keys} == during
    # The recovered replica takes new samples again.
    assert any(replicas.choose(f"late-{i}") is down for i in range(20))


async def test_pinned_keys_are_bounded():
    replicas = ReplicaSet(URLS[:2], probe=_probe_returning(True), rng=random.Random(0), max_pinned_keys=3)
    for i in range(5):
        replicas.choose(f"k{i}")
    assert replicas.pinned_replica("k0") is None and replicas.pinned_replica("k4") is not None


async def test_keyless_requests_go_to_fewest_in_flight():
    replicas = make_set(URLS[:3])
    a, b, c = replicas.replicas
    with replicas.attempt(a), replicas.attempt(a), replicas.attempt(b):
        assert replicas.choose(None) is c
        with replicas.attempt(c), replicas.attempt(c):
            assert replicas.choose(None) is b
    assert all(r.in_flight == 0 for r in replicas.replicas)


async def test_retry_avoids_replicas_the_request_failed_on_while_others_remain():
    replicas = make_set(URLS[:2])
    first = replicas.choose("k")
    assert replicas.choose("k", avoid=[first]) is not first
    # With every healthy replica already tried, trying one of them again beats giving up.
    assert replicas.choose("k", avoid=replicas.replicas) in replicas.replicas


async def test_all_unhealthy_falls_back_to_the_longest_failed():
    replicas = make_set(URLS[:2])
    a, b = replicas.replicas
    replicas.record_failure(a, "x", replica_down=True, will_retry=True)
    await asyncio.sleep(0.01)
    replicas.record_failure(b, "y", replica_down=True, will_retry=False)
    assert replicas.choose("k") is a
    stats = replicas.stats()
    assert stats[a.base_url]["failovers"] == 1 and stats[b.base_url]["failovers"] == 0
    assert stats[b.base_url]["errors"] == 1 and stats[b.base_url]["last_error"] == "y"


async def test_probe_after_cooldown_restores_a_replica():
    calls: list[str] = []
    replicas = make_set(URLS[:2], cooldown_s=0.0, calls=calls)
    a = replicas.replicas[0]
    replicas.record_failure(a, "reset", replica_down=True, will_retry=True)
    replicas.choose(None)  # starts the due probe
    await asyncio.sleep(0.01)
    assert calls == [a.base_url] and a.healthy


async def test_failed_probe_keeps_replica_out_and_waits_for_next_cooldown():
    calls: list[str] = []
    replicas = make_set(URLS[:2], probe_ok=False, cooldown_s=0.05, calls=calls)
    a = replicas.replicas[0]
    replicas.record_failure(a, "reset", replica_down=True, will_retry=True)
    replicas.choose(None)
    await asyncio.sleep(0.01)
    assert calls == [] and not a.healthy  # cooldown not over yet
    await asyncio.sleep(0.05)
    replicas.choose(None)
    await asyncio.sleep(0.01)
    replicas.choose(None)  # cooldown restarted by the failed probe: no second probe yet
    await asyncio.sleep(0.01)
    assert calls == [a.base_url] and not a.healthy
    await replicas.aclose()


def test_health_url_uses_server_root_for_v1_urls():
    assert Replica("http://h:1/v1").health_url == "http://h:1/health"
    assert Replica("http://h:1/openai").health_url == "http://h:1/openai/models"


def test_backoff_grows_with_jitter_and_is_capped():
    policy = RetryPolicy(max_retries=10, backoff_base_s=0.1, backoff_max_s=1.0)
    rng = random.Random(1)
    for retry, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (8, 1.0)]:
        delays = [policy.delay_s(retry, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_rejects_empty_or_duplicate_urls():
    async def probe(_: Replica) -> bool:
        return True

    with pytest.raises(ValueError):
        ReplicaSet([], probe=probe)
    with pytest.raises(ValueError):
        ReplicaSet(["http://a/v1", "http://a/v1/"], probe=probe)
