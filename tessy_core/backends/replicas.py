"""Replica routing for one model served by several OpenAI-compatible servers.

Choice of replica:
- the first request of an affinity key (one sample's model) goes to the healthy replica with the
  fewest requests in flight, and the key is pinned there: every later step of that sample lands on
  the same server and hits its prefix cache. When that replica fails, only its keys move (again to
  the least loaded healthy replica) and stay where they moved, since their cached prefix is there now;
- a request without a key goes to the healthy replica with the fewest requests in flight.

A replica that fails at transport level (refused, reset, timeout, 5xx) is marked unhealthy and
gets no traffic until a health probe, started lazily after a cooldown, finds it serving again.
When every replica is down (a single server restarting, a rolling restart caught at its worst),
requests wait for one to come back (`wait_for_recovery`) instead of spending their retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterator, Sequence

HealthProbe = Callable[["Replica"], Awaitable[bool]]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried across replicas."""

    max_retries: int = 4
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    # Per request: the longest it waits, in all, for a model whose every replica is down; 0: it
    # does not wait, and its retries (with backoff) are all the patience it has.
    outage_wait_s: float = 600.0

    def delay_s(self, retry: int, rng: random.Random) -> float:
        """Exponential backoff with jitter before retry number `retry` (1-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (retry - 1))
        # Half fixed, half random: retries of many requests that failed together spread out.
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class ReplicaCounters:
    requests: int = 0
    errors: int = 0
    failovers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Wall seconds from sending a request to its reply's end, summed (the client's view of the
    # servers' `vllm:e2e_request_latency_seconds`).
    request_seconds: float = 0.0


@dataclass(eq=False)
class Replica:
    """One server of the model, addressed by its OpenAI base URL (usually ending in /v1)."""

    base_url: str
    healthy: bool = True
    in_flight: int = 0
    last_error: str | None = None
    failed_at: float | None = None
    counters: ReplicaCounters = field(default_factory=ReplicaCounters)
    probe_task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def health_url(self) -> str:
        """vLLM's `/health` sits on the server root; other servers are asked for `/v1/models`."""
        if self.base_url.endswith("/v1"):
            return self.base_url[: -len("/v1")] + "/health"
        return self.base_url + "/models"


class ReplicaSet:
    """The replicas of one model, their health, and the choice of a replica per request."""

    def __init__(
        self,
        base_urls: Sequence[str],
        *,
        probe: HealthProbe,
        probe_cooldown_s: float = 5.0,
        rng: random.Random | None = None,
        max_pinned_keys: int = 100_000,
    ):
        urls = [url.rstrip("/") for url in base_urls]
        if not urls:
            raise ValueError("a replica set needs at least one base URL")
        if len(set(urls)) != len(urls):
            raise ValueError(f"duplicate replica URLs: {urls}")
        self.replicas = [Replica(url) for url in urls]
        self._probe = probe
        self._probe_cooldown_s = probe_cooldown_s
        self._rng = rng or random.Random()
        # affinity key -> its replica, least recently used first; bounded, since keys of finished
        # samples are never released explicitly (a forgotten key is simply placed again).
        self._pinned: OrderedDict[str, Replica] = OrderedDict()
        self._max_pinned = max_pinned_keys

    def choose(self, affinity_key: str | None, *, avoid: Sequence[Replica] = ()) -> Replica:
        """The replica for the next attempt of a request; `avoid` lists replicas it failed on."""
        self._start_due_probes()
        healthy = [r for r in self.replicas if r.healthy]
        candidates = [r for r in healthy if r not in avoid] or healthy
        if not candidates:
            # Nothing known to be healthy: try the replica that failed longest ago rather than
            # refusing, so a single-replica model survives a short outage within its retries.
            return min(self.replicas, key=lambda r: r.failed_at or 0.0)
        if affinity_key is None:
            return self._least_loaded(candidates)
        pinned = self._pinned.get(affinity_key)
        if pinned is not None and pinned in candidates:
            self._pinned.move_to_end(affinity_key)
            return pinned
        chosen = self._least_loaded(candidates)
        self._pinned[affinity_key] = chosen
        self._pinned.move_to_end(affinity_key)
        while len(self._pinned) > self._max_pinned:
            self._pinned.popitem(last=False)
        return chosen

    @property
    def all_down(self) -> bool:
        return not any(r.healthy for r in self.replicas)

    async def wait_for_recovery(self, deadline: float, *, poll_s: float = 0.5) -> bool:
        """Wait until a health probe finds some replica serving (True) or `deadline` passes (False).

        `deadline` is on `time.monotonic()`'s clock. With nothing else to serve, replicas are
        probed every `poll_s` rather than after the usual cooldown, however many requests wait
        (one probe per replica at a time), so a short hiccup costs a short wait.
        """
        while self.all_down:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._start_due_probes(cooldown_s=poll_s)
            await asyncio.sleep(min(poll_s, remaining))
        return True

    def pinned_replica(self, affinity_key: str) -> Replica | None:
        """Where `affinity_key` is pinned, if it has been placed."""
        return self._pinned.get(affinity_key)

    def _least_loaded(self, candidates: Sequence[Replica]) -> Replica:
        fewest = min(r.in_flight for r in candidates)
        return self._rng.choice([r for r in candidates if r.in_flight == fewest])

    @contextlib.contextmanager
    def attempt(self, replica: Replica) -> Iterator[None]:
        """Counts one request on `replica` while it is in flight."""
        replica.counters.requests += 1
        replica.in_flight += 1
        started = time.perf_counter()
        try:
            yield
        finally:
            replica.in_flight -= 1
            replica.counters.request_seconds += time.perf_counter() - started

    def record_success(self, replica: Replica, *, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        replica.counters.prompt_tokens += prompt_tokens
        replica.counters.completion_tokens += completion_tokens
        self._mark_healthy(replica)

    def record_tokens(self, replica: Replica, usage: dict) -> None:
        """Add an OpenAI `usage` object's token counts to the replica's counters."""
        replica.counters.prompt_tokens += usage.get("prompt_tokens") or 0
        replica.counters.completion_tokens += usage.get("completion_tokens") or 0

    def record_failure(self, replica: Replica, error: str, *, replica_down: bool, will_retry: bool) -> None:
        replica.counters.errors += 1
        if will_retry:
            replica.counters.failovers += 1
        replica.last_error = error
        if replica_down:
            replica.healthy = False
            replica.failed_at = time.monotonic()

    def stats(self) -> dict[str, dict]:
        return {
            r.base_url: {
                "healthy": r.healthy,
                "in_flight": r.in_flight,
                "last_error": r.last_error,
                **vars(r.counters),
            }
            for r in self.replicas
        }

    async def aclose(self) -> None:
        tasks = [r.probe_task for r in self.replicas if r.probe_task and not r.probe_task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _mark_healthy(self, replica: Replica) -> None:
        replica.healthy = True
        replica.failed_at = None

    def _start_due_probes(self, cooldown_s: float | None = None) -> None:
        now = time.monotonic()
        cooldown_s = self._probe_cooldown_s if cooldown_s is None else cooldown_s
        for replica in self.replicas:
            due = replica.failed_at is not None and now - replica.failed_at >= cooldown_s
            probing = replica.probe_task is not None and not replica.probe_task.done()
            if not replica.healthy and due and not probing:
                replica.probe_task = asyncio.get_running_loop().create_task(self._run_probe(replica))

    async def _run_probe(self, replica: Replica) -> None:
        if await self._probe(replica):
            self._mark_healthy(replica)
        else:
            replica.failed_at = time.monotonic()
