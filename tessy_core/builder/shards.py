"""Planning a build into shards, and running one shard: generate, verify, stage each sample.

A shard is the unit of distribution and of resume. Running a shard again skips the samples it
already staged and resumes running traces from their checkpoints.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Protocol

from tessy_core.builder.workspace import BuildPlan, BuildWorkspace, ShardSpec
from tessy_core.catalog.schema import PromptRecord
from tessy_core.config import GenerationConfig
from tessy_core.engine.factory import open_decoder
from tessy_core.engine.records import SampleCheckpoint, SampleRequest, SampleResult
from tessy_core.engine.runner import run_samples
from tessy_core.identity import sample_id
from tessy_core.quality.style import StyleGate
from tessy_core.rows import StagedSample


class SampleVerifier(Protocol):
    """Checks a generated answer against its prompt's tests; returns a JSON-friendly verdict."""

    async def __call__(self, prompt: PromptRecord, answer: str) -> dict[str, Any]: ...


def plan_build(
    dataset: str,
    prompts: list[PromptRecord],
    *,
    config_hash: str,
    generation_hash: str,
    samples_per_prompt: int,
    shard_size: int,
) -> BuildPlan:
    """A deterministic plan: the same selection and config always give the same build id and shards."""
    prompt_ids = sorted(p.prompt_id for p in prompts)
    key = json.dumps([dataset, config_hash, samples_per_prompt, prompt_ids])
    build_id = f"{dataset}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    shards = [
        ShardSpec(shard_id=f"shard-{index:05d}", prompt_ids=prompt_ids[start : start + shard_size])
        for index, start in enumerate(range(0, len(prompt_ids), shard_size))
    ]
    return BuildPlan(
        build_id=build_id, dataset=dataset, config_hash=config_hash, generation_hash=generation_hash,
        samples_per_prompt=samples_per_prompt, shards=shards,
    )


def shard_requests(plan: BuildPlan, shard: ShardSpec, prompts: dict[str, PromptRecord], mode: str) -> list[SampleRequest]:
    requests = [
        SampleRequest(
            sample_id=sample_id(pid, index, mode, plan.generation_hash),
            prompt_id=pid,
            problem=prompts[pid].statement,
            sample_index=index,
        )
        for pid in shard.prompt_ids
        for index in range(plan.samples_per_prompt)
    ]
    if shard.sample_ids is None:
        return requests
    wanted = set(shard.sample_ids)
    return [r for r in requests if r.sample_id in wanted]


# Shards per worker when the config leaves the size to the planner: enough that a free worker always
# finds a shard to pull and a slow one holds back at most a small part of the build.
SHARDS_PER_WORKER = 8


def auto_shard_size(samples: int, *, workers: int, concurrency: int, samples_per_prompt: int = 1) -> int:
    """Prompts per shard for `samples` samples run by `workers` shard slots.

    About SHARDS_PER_WORKER shards per worker, but never fewer samples than one shard keeps in flight
    (`concurrency`: a smaller shard leaves its backend idle) nor more than four times that (a bigger
    one makes the build's tail, when fewer shards than workers are left, longer).
    """
    if min(workers, concurrency, samples_per_prompt) < 1:
        raise ValueError("workers, concurrency and samples_per_prompt must be >= 1")
    per_shard = -(-samples // (workers * SHARDS_PER_WORKER))
    per_shard = min(max(per_shard, concurrency), 4 * concurrency)
    return max(1, -(-per_shard // samples_per_prompt))


def checkpoint_sink(workspace: BuildWorkspace) -> Callable[[SampleCheckpoint], Awaitable[None]]:
    """Saves running samples' checkpoints off the event loop: each is a file written and renamed,
    which on a busy disk can take milliseconds that would stall every other sample of the shard.
    A sample still waits for its own checkpoint; samples never share a checkpoint file."""

    async def save(state: SampleCheckpoint) -> None:
        await asyncio.to_thread(workspace.save_checkpoint, state)

    return save


def server_stats(decoder) -> dict[str, dict[str, Any]]:
    """Per role, what the servers themselves reported for this shard's requests (HTTP backends:
    each replica's requests, prompt and completion tokens from the OpenAI `usage` objects, errors and
    failovers); in-process backends have no server and are left out."""
    stats = {}
    for role, participant in decoder.participants.items():
        report = getattr(participant.backend, "stats", None)
        if callable(report):
            stats[getattr(role, "value", str(role))] = report()
    return stats


async def run_shard(
    workspace: BuildWorkspace,
    plan: BuildPlan,
    shard: ShardSpec,
    generation: GenerationConfig,
    *,
    verifier: SampleVerifier | None = None,
    style: StyleGate | None = None,
    on_sample: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Generate, verify and (with a `style` gate) style-score every sample of a shard not yet
    staged; returns the shard's summary."""
    done = workspace.shard_done(shard.shard_id)
    if done is not None:
        return done
    prompts = workspace.load_prompts()
    staged = workspace.finished_records(shard.shard_id)
    mode = generation.engine.mode.value
    requests = shard_requests(plan, shard, prompts, mode)
    todo = [r for r in requests if r.sample_id not in staged]

    scorer = None

    async def stage(result: SampleResult) -> None:
        generated = result.to_record()
        verification = None
        if result.ok and verifier is not None:
            verification = await verifier(prompts[result.prompt_id], result.answer)
        scores = await scorer(generated) if scorer is not None else None
        record = StagedSample.from_engine(generated, verification, scores).model_dump(mode="json")
        workspace.append_record(shard.shard_id, record)
        workspace.drop_checkpoint(result.sample_id)
        if on_sample is not None:
            on_sample(record)

    async with open_decoder(generation) as decoder, AsyncExitStack() as stack:
        if style is not None and todo:
            from tessy_core.builder.style_score import open_style_scorer, style_plan

            every_sample = [r.sample_id for s in plan.shards for r in shard_requests(plan, s, prompts, mode)]
            references, chosen = style_plan(style, plan.prompt_ids, every_sample)
            scorer = await stack.enter_async_context(
                open_style_scorer(decoder, generation, style, references, chosen))
        summary = await run_samples(
            decoder,
            todo,
            concurrency=generation.engine.concurrency,
            on_result=stage,
            resume_from=workspace.load_checkpoint,
            checkpoint=checkpoint_sink(workspace),
        )
        servers = server_stats(decoder)
        identities = dict(decoder.identities)
    result = {
        "shard_id": shard.shard_id, "samples": len(requests), "resumed_with": len(staged), **summary.to_record(),
        "servers": servers, "identities": identities,
    }
    workspace.mark_shard_done(shard.shard_id, result)
    return result
