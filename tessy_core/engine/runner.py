"""Runs many samples through a decoder: each advances on its own, at most `concurrency` at once.

No lock-step rounds: a fast sample never waits for a slow one. Results are handed to `on_result` as
soon as each finishes, so the caller can persist them incrementally (crash-safe).

`run_samples_lockstep` is the other schedule, kept as a measured baseline: the published research
implementation advances a pool of samples in rounds, one request each, every round waiting for
the slowest request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from itertools import islice
from typing import Awaitable, Callable, Iterable

from tessy_core.engine.loop import CheckpointSink, CooperativeDecoder, SampleRun
from tessy_core.engine.records import ModelUsage, Role, SampleCheckpoint, SampleRequest, SampleResult


@dataclass
class RunSummary:
    samples_ok: int = 0
    samples_failed: int = 0
    usage: dict[Role, ModelUsage] = field(default_factory=lambda: {role: ModelUsage() for role in Role})
    failure_reasons: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    rounds: int = 0  # lock-step schedule only

    def add(self, result: SampleResult) -> None:
        if result.ok:
            self.samples_ok += 1
        else:
            self.samples_failed += 1
            code = (result.failure_reason or "unknown").split(":", 1)[0]
            self.failure_reasons[code] = self.failure_reasons.get(code, 0) + 1
        for role, usage in result.usage.items():
            self.usage[role].add(usage)

    def to_record(self) -> dict:
        per_model = {
            role.value: {
                "requests": u.requests,
                "tokens_generated": u.tokens_generated,
                "tokens_kept": u.tokens_kept,
                "tokens_discarded": u.tokens_discarded,
            }
            for role, u in self.usage.items()
        }
        generated = sum(u.tokens_generated for u in self.usage.values())
        kept = sum(u.tokens_kept for u in self.usage.values())
        return {
            "samples_ok": self.samples_ok,
            "samples_failed": self.samples_failed,
            "failure_reasons": dict(self.failure_reasons),
            "models": per_model,
            "tokens_kept": kept,
            "tokens_discarded": generated - kept,
            "wall_s": round(self.wall_s, 3),
        }


async def run_samples(
    decoder: CooperativeDecoder,
    requests: Iterable[SampleRequest],
    *,
    concurrency: int,
    on_result: Callable[[SampleResult], Awaitable[None] | None] | None = None,
    resume_from: Callable[[str], SampleCheckpoint | None] | None = None,
    checkpoint: CheckpointSink | None = None,
) -> RunSummary:
    """Generate every request with a pool of `concurrency` workers pulling from one queue."""
    summary = RunSummary()
    started = time.perf_counter()
    pending = iter(requests)

    async def worker() -> None:
        for request in pending:  # the shared iterator hands each request to exactly one worker
            resume = resume_from(request.sample_id) if resume_from else None
            result = await decoder.generate(request, resume=resume, checkpoint=checkpoint)
            summary.add(result)
            if on_result is not None:
                maybe = on_result(result)
                if asyncio.iscoroutine(maybe):
                    await maybe

    try:
        async with asyncio.TaskGroup() as workers:  # one worker's crash cancels the others
            for _ in range(concurrency):
                workers.create_task(worker())
    except BaseExceptionGroup as group:
        # Callers handle the error that happened, not asyncio's wrapper around it.
        raise group.exceptions[0] from None
    summary.wall_s = time.perf_counter() - started
    return summary


async def run_samples_lockstep(
    decoder: CooperativeDecoder,
    requests: Iterable[SampleRequest],
    *,
    pool_size: int,
    on_result: Callable[[SampleResult], Awaitable[None] | None] | None = None,
) -> RunSummary:
    """Advance a pool of `pool_size` samples in rounds: each round every sample makes one request
    and the round ends when the slowest one returns; finished samples are replaced from `requests`."""
    summary = RunSummary()
    started = time.perf_counter()
    pending = iter(requests)
    active: list[SampleRun] = [decoder.start(r) for r in islice(pending, pool_size)]
    while active:
        finished = await asyncio.gather(*(run.advance() for run in active))
        summary.rounds += 1
        still_running = []
        for run, done in zip(active, finished):
            if not done:
                still_running.append(run)
                continue
            summary.add(run.result)
            if on_result is not None:
                maybe = on_result(run.result)
                if asyncio.iscoroutine(maybe):
                    await maybe
            still_running.extend(decoder.start(r) for r in islice(pending, 1))
        active = still_running
    summary.wall_s = time.perf_counter() - started
    return summary
