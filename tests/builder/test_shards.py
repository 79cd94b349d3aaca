"""Shard planning, staging and resume on real tiny models."""

from __future__ import annotations

import json

import pytest

from tessy_core.builder.shards import plan_build, run_shard
from tessy_core.builder.workspace import BuildWorkspace, PlanMismatch
from tessy_core.catalog.schema import PromptRecord
from tessy_core.config import GenerationConfig


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


@pytest.fixture()
def generation(tiny_models) -> GenerationConfig:
    return GenerationConfig.model_validate({
        "teacher": {"name": "teacher", "path": str(tiny_models["teacher"]), "family": "harmony",
                    "backend": "transformers", "span_tokens": 6},
        "student": {"name": "student", "path": str(tiny_models["student"]), "family": "qwen3",
                    "backend": "transformers", "span_tokens": 3},
        "teacher_predictor": {"kind": "lexicon", "phrases": ["Thus", "Compute"]},
        "student_predictor": {"kind": "lexicon", "phrases": ["Okay", "Hmm"]},
        "engine": {"max_thinking_tokens": 20, "max_answer_tokens": 6, "max_attempts": 1, "concurrency": 2,
                   "checkpoint_every": 1},
    })


def _prompts(n: int) -> list[PromptRecord]:
    return [PromptRecord(source="test", statement=f"Problem number {i}: print {i}.") for i in range(n)]


def test_plan_is_deterministic_and_covers_every_prompt():
    prompts = _prompts(7)
    first = plan_build("ds", prompts, config_hash="h", generation_hash="h", samples_per_prompt=2, shard_size=3)
    again = plan_build("ds", list(reversed(prompts)), config_hash="h", generation_hash="h", samples_per_prompt=2, shard_size=3)
    assert first == again
    assert [len(s.prompt_ids) for s in first.shards] == [3, 3, 1]
    assert sorted(first.prompt_ids) == sorted(p.prompt_id for p in prompts)
    assert plan_build("ds", prompts, config_hash="other", generation_hash="other", samples_per_prompt=2, shard_size=3).build_id != first.build_id


def test_workspace_refuses_a_plan_with_another_config(tmp_path):
    prompts = _prompts(2)
    plan = plan_build("ds", prompts, config_hash="h1", generation_hash="h1", samples_per_prompt=1, shard_size=2)
    workspace = BuildWorkspace(tmp_path, plan.build_id)
    workspace.freeze_plan(plan, prompts)
    with pytest.raises(PlanMismatch):
        workspace.freeze_plan(plan.model_copy(update={"config_hash": "h2"}), prompts)


async def test_shard_resumes_after_a_crash_without_duplicates(tmp_path, generation):
    prompts = _prompts(3)
    plan = plan_build("ds", prompts, config_hash=generation.config_hash(), generation_hash=generation.config_hash(), samples_per_prompt=2, shard_size=3)
    workspace = BuildWorkspace(tmp_path, plan.build_id)
    plan = workspace.freeze_plan(plan, prompts)
    shard = plan.shards[0]

    # First run: the "process" dies after two samples are staged (cancellation mid-flight).
    staged: list[str] = []

    def crash_after_two(record):
        staged.append(record["sample_id"])
        if len(staged) == 2:
            raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        await run_shard(workspace, plan, shard, generation, on_sample=crash_after_two)
    # Simulate a torn write of a third record.
    with (workspace.shards_dir / f"{shard.shard_id}.jsonl").open("a") as handle:
        handle.write('{"sample_id": "torn')
    assert workspace.shard_done(shard.shard_id) is None
    assert len(workspace.finished_records(shard.shard_id)) == 2

    verified = []

    async def verifier(prompt, answer):
        verified.append(prompt.prompt_id)
        return {"verdict": "no_code", "passed": 0, "total": 0}

    summary = await run_shard(workspace, plan, shard, generation, verifier=verifier)
    assert summary["resumed_with"] == 2
    assert summary["samples_ok"] + summary["samples_failed"] == 4  # only the missing ones ran
    records = list(workspace.iter_records(plan))
    assert len(records) == 6 and len({r["sample_id"] for r in records}) == 6
    assert all((r["verification"] is not None) == (r["status"] == "ok") for r in records if r["sample_id"] not in staged[:2])
    assert not any(workspace.checkpoints_dir.iterdir())  # finished samples leave no checkpoint

    # A finished shard is not run again.
    assert await run_shard(workspace, plan, shard, generation) == summary


async def test_running_trace_resumes_from_its_checkpoint(tmp_path, generation):
    prompts = _prompts(1)
    plan = plan_build("ds", prompts, config_hash=generation.config_hash(), generation_hash=generation.config_hash(), samples_per_prompt=1, shard_size=1)
    workspace = BuildWorkspace(tmp_path, plan.build_id)
    plan = workspace.freeze_plan(plan, prompts)
    shard = plan.shards[0]
    original = workspace.save_checkpoint
    saved = []

    def save_then_crash(state):
        original(state)
        saved.append(state.thinking)
        if state.steps >= 2:
            raise SimulatedCrash

    workspace.save_checkpoint = save_then_crash
    with pytest.raises(SimulatedCrash):
        await run_shard(workspace, plan, shard, generation)
    workspace.save_checkpoint = original
    checkpoint_file = next(workspace.checkpoints_dir.iterdir())
    before = json.loads(checkpoint_file.read_text())
    thinking_before = "".join(s["text"] for s in before["spans"])

    await run_shard(workspace, plan, shard, generation)
    (record,) = workspace.iter_records(plan)
    assert thinking_before and record["thinking"].startswith(thinking_before)
    assert record["usage"]["student"]["requests"] >= before["usage"]["student"]["requests"]
