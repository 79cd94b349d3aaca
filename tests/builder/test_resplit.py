"""Shard sizing from the worker count, and the re-split of a resumed build's remaining work."""

from __future__ import annotations

from collections import Counter

import pytest

from tessy_core.builder.resplit import remaining_samples, resplit_remaining
from tessy_core.builder.shards import SHARDS_PER_WORKER, auto_shard_size, plan_build, shard_requests
from tessy_core.builder.workspace import BuildPlan, BuildWorkspace, PlanMismatch
from tessy_core.catalog.schema import PromptRecord

MODE = "tessy"


def _prompts(n: int) -> dict[str, PromptRecord]:
    records = [PromptRecord(source="test", statement=f"Problem number {i}: print {i}.") for i in range(n)]
    return {p.prompt_id: p for p in records}


def _setup(tmp_path, prompts, *, samples_per_prompt=1, shard_size=4) -> tuple[BuildWorkspace, BuildPlan]:
    plan = plan_build("ds", list(prompts.values()), config_hash="h", generation_hash="h", samples_per_prompt=samples_per_prompt,
                      shard_size=shard_size)
    workspace = BuildWorkspace(tmp_path, plan.build_id)
    return workspace, workspace.freeze_plan(plan, list(prompts.values()))


def _stage(workspace: BuildWorkspace, plan: BuildPlan, prompts, shard_id: str, count: int, status="ok") -> list[str]:
    shard = next(s for s in plan.shards if s.shard_id == shard_id)
    ids = [r.sample_id for r in shard_requests(plan, shard, prompts, MODE)[:count]]
    for sample_id in ids:
        workspace.append_record(shard_id, {"sample_id": sample_id, "status": status})
    return ids


def _sample_owners(workspace: BuildWorkspace, plan: BuildPlan, prompts) -> Counter[str]:
    """How many shards of `plan` hold each sample id."""
    return Counter(r.sample_id for shard in plan.shards for r in shard_requests(plan, shard, prompts, MODE))


def test_auto_shard_size_gives_each_worker_several_shards_within_bounds():
    # 80K samples on 8 workers at 64 in flight: capped at 4x the in-flight window per shard.
    assert auto_shard_size(80_000, workers=8, concurrency=64) == 256
    # 2,000 samples on 4 workers: ~8 shards each, never below what one shard keeps in flight.
    assert auto_shard_size(2_000, workers=4, concurrency=32) == 63
    assert -(-2_000 // 63) >= 4 * SHARDS_PER_WORKER
    assert auto_shard_size(5, workers=2, concurrency=2) == 2
    # Sizes are in prompts: 3 samples per prompt make a third as many prompts per shard.
    assert auto_shard_size(2_000, workers=4, concurrency=32, samples_per_prompt=3) == 21
    # More workers, smaller shards (until the in-flight floor).
    assert auto_shard_size(1_000, workers=16, concurrency=8) == 8 < auto_shard_size(1_000, workers=4, concurrency=8) == 32
    with pytest.raises(ValueError):
        auto_shard_size(10, workers=0, concurrency=1)


def test_partly_done_shards_are_closed_and_their_rest_moves_to_new_small_shards(tmp_path):
    prompts = _prompts(12)
    workspace, plan = _setup(tmp_path, prompts, shard_size=4)  # shards 0-2, 4 samples each
    workspace.mark_shard_done("shard-00000", {"shard_id": "shard-00000", "samples": 4})
    staged_1 = _stage(workspace, plan, prompts, "shard-00001", 3)
    staged_2 = _stage(workspace, plan, prompts, "shard-00002", 1, status="failed")
    all_ids = set(_sample_owners(workspace, plan, prompts))
    assert remaining_samples(workspace, plan, prompts, MODE) == 1 + 3

    result = resplit_remaining(workspace, plan, prompts, MODE, shard_size=2)

    assert result.closed == ["shard-00001", "shard-00002"] and result.retired == []
    assert result.new == ["shard-00003", "shard-00004"] and result.moved_samples == 4
    new_plan = result.plan
    assert workspace.load_plan() == new_plan
    # Every sample sits in exactly one shard; staged ones stay where they were staged.
    owners = _sample_owners(workspace, new_plan, prompts)
    assert set(owners) == all_ids and set(owners.values()) == {1}
    by_id = {s.shard_id: s for s in new_plan.shards}
    assert by_id["shard-00001"].sample_ids == staged_1 and by_id["shard-00002"].sample_ids == staged_2
    assert [len(by_id[s].sample_ids) for s in result.new] == [2, 2]
    # Closed shards are done, keeping the records they staged; nothing is left to do in them.
    assert workspace.shard_done("shard-00001")["samples"] == 3
    assert workspace.shard_done("shard-00002") == {
        "shard_id": "shard-00002", "samples": 1, "resumed_with": 1, "samples_ok": 0, "samples_failed": 1,
        "closed_by_resplit": True,
    }
    assert set(workspace.finished_records("shard-00001")) == set(staged_1)
    assert sorted(new_plan.prompt_ids) == sorted(plan.prompt_ids)  # each prompt once
    assert remaining_samples(workspace, new_plan, prompts, MODE) == 4

    # A second resume with nothing new staged changes nothing.
    again = resplit_remaining(workspace, new_plan, prompts, MODE, shard_size=2)
    assert not again.changed and again.plan == new_plan


def test_a_prompt_half_done_keeps_its_staged_sample_and_moves_the_other(tmp_path):
    prompts = _prompts(4)
    workspace, plan = _setup(tmp_path, prompts, samples_per_prompt=2, shard_size=2)  # 2 shards x 4 samples
    staged = _stage(workspace, plan, prompts, "shard-00000", 1)  # sample 0 of the first prompt

    result = resplit_remaining(workspace, plan, prompts, MODE, shard_size=1)

    first_prompt = plan.shards[0].prompt_ids[0]
    moved = [r for s in result.plan.shards if s.shard_id in result.new for r in shard_requests(result.plan, s, prompts, MODE)]
    assert (first_prompt, 1) in {(r.prompt_id, r.sample_index) for r in moved}
    assert staged[0] not in {r.sample_id for r in moved}
    owners = _sample_owners(workspace, result.plan, prompts)
    assert len(owners) == 8 and set(owners.values()) == {1}
    # The untouched second shard (4 samples) is bigger than the target (1 prompt = 2 samples): it
    # is retired and its samples go to new shards too.
    assert result.closed == ["shard-00000"] and result.retired == ["shard-00001"]
    assert result.moved_samples == 3 + 4 and [len(s.sample_ids) for s in result.plan.shards[2:]] == [2, 2, 2, 1]
    assert workspace.shard_done("shard-00001")["samples"] == 0


def test_untouched_shards_within_the_target_are_kept(tmp_path):
    prompts = _prompts(6)
    workspace, plan = _setup(tmp_path, prompts, shard_size=2)
    _stage(workspace, plan, prompts, "shard-00000", 1)

    result = resplit_remaining(workspace, plan, prompts, MODE, shard_size=2)

    assert result.closed == ["shard-00000"] and result.new == ["shard-00003"] and result.moved_samples == 1
    assert result.plan.shards[1:3] == plan.shards[1:3]
    assert workspace.shard_done("shard-00001") is None


def test_a_crash_between_replanning_and_closing_is_repaired_by_the_next_resume(tmp_path, monkeypatch):
    prompts = _prompts(4)
    workspace, plan = _setup(tmp_path, prompts, shard_size=4)
    staged = _stage(workspace, plan, prompts, "shard-00000", 2)

    class Crash(BaseException):
        pass

    def crash(*args, **kwargs):
        raise Crash

    monkeypatch.setattr(workspace, "mark_shard_done", crash)
    with pytest.raises(Crash):
        resplit_remaining(workspace, plan, prompts, MODE, shard_size=1)
    monkeypatch.undo()
    stored = workspace.load_plan()
    assert stored.shards[0].sample_ids == staged and workspace.shard_done("shard-00000") is None

    repaired = resplit_remaining(workspace, stored, prompts, MODE, shard_size=1)

    assert repaired.closed == ["shard-00000"] and repaired.new == [] and repaired.moved_samples == 0
    assert workspace.shard_done("shard-00000")["samples"] == 2
    owners = _sample_owners(workspace, repaired.plan, prompts)
    assert len(owners) == 4 and set(owners.values()) == {1}


def test_replace_plan_refuses_another_build(tmp_path):
    prompts = _prompts(2)
    workspace, plan = _setup(tmp_path, prompts)
    with pytest.raises(PlanMismatch):
        workspace.replace_plan(plan.model_copy(update={"config_hash": "other"}))
