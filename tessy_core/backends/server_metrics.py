"""What the inference servers themselves counted: vLLM's Prometheus `/metrics`, read before and after.

The engine's own usage figures say what it asked for and what came back; the servers' counters say
what they actually did (a stream closed by the client keeps decoding until the server notices, a
retried request was decoded twice). `tessy bench decode` reads both and reports them side by side.

Counters read (vLLM 0.32, V1 engine; summed over every label set and replica):
- `vllm:request_success_total{finished_reason=...}`: finished requests, by why they finished
  (stop, length, abort, ...), aborted ones included;
- `vllm:prompt_tokens_total`: prompt tokens of the requests it admitted;
- `vllm:prompt_tokens_cached_total` (older servers: `vllm:prefix_cache_hits_total`): of those, the
  tokens served from the prefix cache;
- `vllm:generation_tokens_total`: tokens it decoded, whether anybody read them or not;
- the sums of its per-request time histograms (`vllm:e2e_request_latency_seconds` and its queue,
  prefill and decode parts): the time requests spent inside the server, to set beside the time the
  client waited for them;
- `vllm:iteration_tokens_total` (a histogram of tokens per engine step): its count is the number of
  engine steps, its sum over the count the mean batch the engine ran.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import httpx

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) for every sample line of a Prometheus text exposition."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, raw_labels, raw_value = match.groups()
        try:
            value = float(raw_value)
        except ValueError:
            continue
        labels = dict(_LABEL.findall(raw_labels or ""))
        samples.append((name, labels, value))
    return samples


@dataclass
class ServerCounters:
    """Cumulative counters of one or more servers (a model's replicas add up)."""

    requests: float = 0.0
    requests_by_reason: dict[str, float] = field(default_factory=dict)
    prompt_tokens: float = 0.0
    prompt_tokens_cached: float = 0.0
    generation_tokens: float = 0.0
    # Seconds requests spent in the server, summed over requests: "request" (arrival to finish),
    # and its parts "queue", "prefill" and "decode".
    seconds: dict[str, float] = field(default_factory=dict)
    engine_steps: float = 0.0
    engine_step_tokens: float = 0.0
    # Endpoints that did not answer /metrics: their share is missing from the figures above.
    unreadable: list[str] = field(default_factory=list)

    @classmethod
    def from_samples(cls, samples: Iterable[tuple[str, dict[str, str], float]]) -> "ServerCounters":
        counters = cls()
        cached_new, cached_old = 0.0, 0.0
        for name, labels, value in samples:
            if name == "vllm:request_success_total":
                reason = labels.get("finished_reason", "unknown")
                counters.requests += value
                counters.requests_by_reason[reason] = counters.requests_by_reason.get(reason, 0.0) + value
            elif name == "vllm:prompt_tokens_total":
                counters.prompt_tokens += value
            elif name == "vllm:generation_tokens_total":
                counters.generation_tokens += value
            elif name == "vllm:prompt_tokens_cached_total":
                cached_new += value
            elif name == "vllm:prefix_cache_hits_total":
                cached_old += value
            elif name in _SECONDS:
                part = _SECONDS[name]
                counters.seconds[part] = counters.seconds.get(part, 0.0) + value
            elif name == "vllm:iteration_tokens_total_count":
                counters.engine_steps += value
            elif name == "vllm:iteration_tokens_total_sum":
                counters.engine_step_tokens += value
        counters.prompt_tokens_cached = cached_new or cached_old
        return counters

    def __add__(self, other: "ServerCounters") -> "ServerCounters":
        return ServerCounters(
            self.requests + other.requests,
            _combine(self.requests_by_reason, other.requests_by_reason, 1),
            self.prompt_tokens + other.prompt_tokens,
            self.prompt_tokens_cached + other.prompt_tokens_cached,
            self.generation_tokens + other.generation_tokens,
            _combine(self.seconds, other.seconds, 1),
            self.engine_steps + other.engine_steps,
            self.engine_step_tokens + other.engine_step_tokens,
            self.unreadable + other.unreadable,
        )

    def __sub__(self, before: "ServerCounters") -> "ServerCounters":
        return ServerCounters(
            self.requests - before.requests,
            _combine(self.requests_by_reason, before.requests_by_reason, -1),
            self.prompt_tokens - before.prompt_tokens,
            self.prompt_tokens_cached - before.prompt_tokens_cached,
            self.generation_tokens - before.generation_tokens,
            _combine(self.seconds, before.seconds, -1),
            self.engine_steps - before.engine_steps,
            self.engine_step_tokens - before.engine_step_tokens,
            sorted(set(self.unreadable) | set(before.unreadable)),
        )

    def to_record(self) -> dict:
        return {
            "requests": _int(self.requests),
            "requests_by_finish_reason": {k: _int(v) for k, v in sorted(self.requests_by_reason.items())},
            "prompt_tokens": _int(self.prompt_tokens),
            "prompt_tokens_cached": _int(self.prompt_tokens_cached),
            "generation_tokens": _int(self.generation_tokens),
            "seconds_in_server": {part: round(v, 3) for part, v in sorted(self.seconds.items())},
            "engine_steps": _int(self.engine_steps),
            "mean_tokens_per_engine_step": (
                round(self.engine_step_tokens / self.engine_steps, 2) if self.engine_steps else None
            ),
            "unreadable_endpoints": list(self.unreadable),
        }


def metrics_url(endpoint: str) -> str:
    """An OpenAI base URL (".../v1") -> the server's Prometheus endpoint ("/metrics" on its root)."""
    base = endpoint.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + "/metrics"


async def read_counters(endpoints: Sequence[str], *, timeout_s: float = 10.0) -> ServerCounters:
    """The summed counters of `endpoints` (one model's replicas) right now."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:

        async def one(endpoint: str) -> ServerCounters:
            try:
                response = await client.get(metrics_url(endpoint))
                response.raise_for_status()
            except httpx.HTTPError:
                return ServerCounters(unreadable=[endpoint])
            return ServerCounters.from_samples(parse_prometheus(response.text))

        total = ServerCounters()
        for counters in await asyncio.gather(*(one(e) for e in endpoints)):
            total = total + counters
        return total


async def read_counters_by_model(endpoints: dict[str, Sequence[str]]) -> dict[str, ServerCounters]:
    """`read_counters` for several models at once ({model: its endpoints})."""
    names = list(endpoints)
    values = await asyncio.gather(*(read_counters(endpoints[name]) for name in names))
    return dict(zip(names, values))


async def settle(endpoints: dict[str, Sequence[str]], *, quiet_s: float = 0.5, max_wait_s: float = 30.0) -> dict[str, ServerCounters]:
    """Counters once the servers have stopped counting (two reads `quiet_s` apart agree), so work
    still draining after the client is done (an aborted stream's last steps) lands in this window."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    previous = await read_counters_by_model(endpoints)
    while True:
        await asyncio.sleep(quiet_s)
        current = await read_counters_by_model(endpoints)
        same = all(
            math.isclose(current[m].generation_tokens, previous[m].generation_tokens)
            and math.isclose(current[m].requests, previous[m].requests)
            for m in current
        )
        if same or loop.time() > deadline:
            return current
        previous = current


_SECONDS = {
    "vllm:e2e_request_latency_seconds_sum": "request",
    "vllm:request_queue_time_seconds_sum": "queue",
    "vllm:request_prefill_time_seconds_sum": "prefill",
    "vllm:request_decode_time_seconds_sum": "decode",
}


def _combine(a: dict[str, float], b: dict[str, float], sign: int) -> dict[str, float]:
    """`a + sign * b` key by key; keys that come to zero are left out."""
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0.0) + sign * value
    return {key: value for key, value in out.items() if value}


def _int(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 3)
