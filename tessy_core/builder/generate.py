"""The per-row stages of a build, run shard by shard wherever the runner places them: generate each
missing sample, verify its answer in the sandbox, score its style (when the style gate is on), stage
the row (`tessy_core.rows.StagedSample`).

A shard needs the models, the work dir and a sandbox, not the catalog. Running it again skips the
samples it already staged, so a retried or resumed shard only does what is left.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tessy_core.builder.config import BuildConfig
from tessy_core.builder.progress import report
from tessy_core.builder.results import (
    EXAMPLES_PER_REASON,
    ShardSummary,
    ShardTally,
    reason_code,
)
from tessy_core.builder.shards import run_shard
from tessy_core.builder.workspace import BuildWorkspace
from tessy_core.catalog import PromptRecord


def generate_shard(config: BuildConfig, build_id: str, shard_id: str) -> ShardSummary:
    """Generate and verify one shard's missing samples into the build's workspace.

    A finished shard returns its stored summary without loading anything.
    """
    workspace = BuildWorkspace(Path(config.work_dir), build_id)
    plan = workspace.load_plan()
    if plan is None:
        raise FileNotFoundError(f"{workspace.dir}: no plan.json; run prepare_build first")
    shard = next((s for s in plan.shards if s.shard_id == shard_id), None)
    if shard is None:
        raise KeyError(f"build {build_id} has no shard {shard_id!r}")
    done = workspace.shard_done(shard_id)
    if done is not None:
        return _shard_summary(done, skipped=True, tally=shard_tally(config, workspace, shard_id))

    staged = len(workspace.finished_records(shard_id))
    report(
        "shard_started", build_id, shard_id=shard_id, prompts=len(shard.prompt_ids),
        samples=len(shard.sample_ids) if shard.sample_ids is not None else len(shard.prompt_ids) * plan.samples_per_prompt,
        kept_from_earlier_runs=staged, servers=_endpoints(config),
        predictors={role: _predictor_label(p) for role, p in (
            ("teacher", config.generation.teacher_predictor), ("student", config.generation.student_predictor))},
    )

    def on_sample(record: dict[str, Any]) -> None:
        verdict = (record.get("verification") or {}).get("verdict")
        report(
            "sample", build_id, shard_id=shard_id, sample_id=record["sample_id"], status=record["status"],
            verdict=verdict, failure_reason=record.get("failure_reason"), attempts=record.get("attempts", 1),
            attempt_failures=list(record.get("attempt_failures") or []),
        )

    summary = asyncio.run(_run_shard_verified(config, workspace, plan, shard, on_sample))
    result = _shard_summary(summary, skipped=False, tally=shard_tally(config, workspace, shard_id))
    report("shard_finished", build_id, shard_id=shard_id, summary=result.model_dump(mode="json"))
    return result


def shard_tally(config: BuildConfig, workspace: BuildWorkspace, shard_id: str) -> ShardTally:
    """The shard's staged samples labelled by the publish policy: publishable, rejected, failed,
    with reasons and the first sample ids of each."""
    import polars as pl

    from tessy_core.quality.expectations import TRAIN
    from tessy_core.quality.policy import split_by_policy

    records = list(workspace.finished_records(shard_id).values())
    if not records:
        return ShardTally()
    rows = [
        {
            "sample_id": r.get("sample_id"), "status": r.get("status"), "failure_reason": r.get("failure_reason"),
            "assistant": r.get("assistant"), "answer": r.get("answer"),
            "verdict": (r.get("verification") or {}).get("verdict"),
        }
        for r in records
    ]
    frame = pl.DataFrame(rows, schema={c: pl.String for c in rows[0]})
    frame = frame.with_columns(pl.struct(pl.col("verdict")).alias("verification")).drop("verdict")
    labelled = split_by_policy(frame, config.validation)
    tally: dict[str, Any] = {"publishable": 0, "rejected": 0, "failed": 0, "reasons": {}, "examples": {}}
    for row in labelled.select("sample_id", "status", "split", "rejection_reason").iter_rows(named=True):
        if row["status"] != "ok":
            kind = "failed"
        elif row["split"] == TRAIN:
            tally["publishable"] += 1
            continue
        else:
            kind = "rejected"
        tally[kind] += 1
        reason = reason_code(row["rejection_reason"] or "")
        counts = tally["reasons"].setdefault(kind, {})
        counts[reason] = counts.get(reason, 0) + 1
        ids = tally["examples"].setdefault(reason, [])
        if len(ids) < EXAMPLES_PER_REASON:
            ids.append(row["sample_id"])
    tally["retried"] = sum(1 for r in records if (r.get("attempts") or 1) > 1)
    return ShardTally(**tally)


def _endpoints(config: BuildConfig) -> dict[str, str]:
    """Per role, where the model is served (or that it runs in this process), for logs."""
    labels = {}
    for role, model in (("teacher", config.generation.teacher), ("student", config.generation.student)):
        where = ", ".join(model.endpoints) if model.endpoints else "in-process"
        labels[role] = f"{model.name} ({model.backend}: {where})"
    return labels


def _predictor_label(predictor) -> str:
    if predictor is None:
        return "none"
    return f"{predictor.kind}" + (f" {predictor.path}" if getattr(predictor, "path", None) else "")


async def _run_shard_verified(config, workspace, plan, shard, on_sample) -> dict[str, Any]:
    style = config.validation.style
    if not config.verification.enabled:
        return await run_shard(workspace, plan, shard, config.generation, style=style, on_sample=on_sample)
    from tessy_core.verify import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(workers=config.verification.workers)) as sandbox:
        verifier = SandboxVerifier(sandbox, config.verification.language)
        return await run_shard(workspace, plan, shard, config.generation, verifier=verifier, style=style,
                               on_sample=on_sample)


class SandboxVerifier:
    """Runs an answer's program on its prompt's tests. Never raises: a sandbox failure on one
    sample becomes that sample's `verifier_error` verdict (it is then rejected, not lost)."""

    def __init__(self, sandbox, language: str) -> None:
        self.sandbox = sandbox
        self.language = language

    async def __call__(self, prompt: PromptRecord, answer: str) -> dict[str, Any]:
        from tessy_core.verify import ExecutionLimits, verify_answer_async

        if not prompt.tests:
            return {"verdict": "no_tests", "passed": 0, "total": 0, "details_json": "{}"}
        limits = ExecutionLimits(time_limit_s=prompt.time_limit_s, memory_limit_mb=prompt.memory_limit_mb)
        tests = [test.model_dump() for test in prompt.tests]
        try:
            result = await verify_answer_async(self.sandbox, answer, tests, limits, language=self.language,
                                               source=prompt.source)  # its comparison (comparison_by_source)
        except Exception as error:  # noqa: BLE001 - isolated per sample by design
            details = json.dumps({"message": f"{type(error).__name__}: {error}"})
            return {"verdict": "verifier_error", "passed": 0, "total": len(tests), "details_json": details}
        return result.to_record()


def _shard_summary(summary: dict[str, Any], skipped: bool, tally: ShardTally | None = None) -> ShardSummary:
    return ShardSummary(
        shard_id=summary["shard_id"], samples=summary["samples"], skipped=skipped,
        resumed_with=summary.get("resumed_with", 0), samples_ok=summary.get("samples_ok", 0),
        samples_failed=summary.get("samples_failed", 0), models=summary.get("models", {}),
        wall_s=summary.get("wall_s", 0.0), failure_reasons=summary.get("failure_reasons", {}),
        servers=summary.get("servers", {}), identities=summary.get("identities", {}), tally=tally,
    )
