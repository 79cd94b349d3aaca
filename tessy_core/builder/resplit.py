"""Re-splitting a resumed build's remaining work into fresh small shards.

A build killed mid-way leaves shards partly done. Rerunning them as they are would hand each
remainder to one worker, so a build of a few big half-done shards would finish on a few workers
while the others idle. On resume the planner instead:
- keeps finished shards, and untouched shards no bigger than the target size, as they are;
- closes each partly done shard on the samples it has staged (its spec lists exactly those, and it
  is marked done), and retires untouched shards bigger than the target (they keep no sample);
- pools the remaining samples of those shards, in plan order, into new shards of the target size,
  numbered after the existing ones.

Sample ids never change (they come from prompt, index, mode and config), so a sample staged
before is never generated again, in-flight checkpoints (kept per sample) still apply, and the
catalog's accounting is untouched. The new plan is written before any shard is marked done, so a
crash in between is repaired by the next resume, which finds the same shards to close and nothing
more to move.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tessy_core.builder.shards import shard_requests
from tessy_core.builder.workspace import BuildPlan, BuildWorkspace, ShardSpec
from tessy_core.catalog.schema import PromptRecord
from tessy_core.engine.records import SampleRequest


@dataclass(frozen=True)
class Resplit:
    plan: BuildPlan
    closed: list[str] = field(default_factory=list)  # partly done shards, closed on what they staged
    retired: list[str] = field(default_factory=list)  # untouched shards larger than the target size
    new: list[str] = field(default_factory=list)
    moved_samples: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.closed or self.retired)

    def to_record(self) -> dict[str, Any]:
        return {
            "closed": self.closed, "retired": self.retired, "new": self.new, "moved_samples": self.moved_samples,
        }


def remaining_samples(
    workspace: BuildWorkspace, plan: BuildPlan, prompts: dict[str, PromptRecord], mode: str
) -> int:
    """Samples of unfinished shards that no shard has staged yet."""
    total = 0
    for shard in plan.shards:
        if workspace.shard_done(shard.shard_id) is None:
            staged = workspace.finished_records(shard.shard_id)
            total += sum(1 for r in shard_requests(plan, shard, prompts, mode) if r.sample_id not in staged)
    return total


def resplit_remaining(
    workspace: BuildWorkspace,
    plan: BuildPlan,
    prompts: dict[str, PromptRecord],
    mode: str,
    shard_size: int,
) -> Resplit:
    """Re-plan the unfinished shards of `plan` (see the module doc); `shard_size` in prompts, as in
    `BuildConfig.shard_size`. Stores the new plan and closes the old shards; returns what moved."""
    if shard_size < 1:
        raise ValueError("shard_size must be >= 1")
    target = shard_size * plan.samples_per_prompt
    shards: list[ShardSpec] = []
    pool: list[SampleRequest] = []
    closing: list[tuple[ShardSpec, dict[str, dict[str, Any]]]] = []
    for shard in plan.shards:
        if workspace.shard_done(shard.shard_id) is not None:
            shards.append(shard)
            continue
        requests = shard_requests(plan, shard, prompts, mode)
        staged = workspace.finished_records(shard.shard_id)
        if not staged and 0 < len(requests) <= target:
            shards.append(shard)
            continue
        kept = [r for r in requests if r.sample_id in staged]
        closed = ShardSpec(
            shard_id=shard.shard_id,
            prompt_ids=list(dict.fromkeys(r.prompt_id for r in kept)),
            sample_ids=[r.sample_id for r in kept],
        )
        shards.append(closed)
        closing.append((closed, {r.sample_id: staged[r.sample_id] for r in kept}))
        pool.extend(r for r in requests if r.sample_id not in staged)
    if not closing:
        return Resplit(plan=plan)

    taken = {s.shard_id for s in shards}
    new_ids: list[str] = []
    next_index = len(plan.shards)
    for start in range(0, len(pool), target):
        chunk = pool[start : start + target]
        while f"shard-{next_index:05d}" in taken:
            next_index += 1
        shard_id = f"shard-{next_index:05d}"
        taken.add(shard_id)
        new_ids.append(shard_id)
        shards.append(
            ShardSpec(
                shard_id=shard_id,
                prompt_ids=list(dict.fromkeys(r.prompt_id for r in chunk)),
                sample_ids=[r.sample_id for r in chunk],
            )
        )
    replanned = plan.model_copy(update={"shards": shards})
    workspace.replace_plan(replanned)
    for closed, records in closing:
        ok = sum(1 for record in records.values() if record.get("status") == "ok")
        workspace.mark_shard_done(
            closed.shard_id,
            {
                "shard_id": closed.shard_id, "samples": len(records), "resumed_with": len(records),
                "samples_ok": ok, "samples_failed": len(records) - ok, "closed_by_resplit": True,
            },
        )
    return Resplit(
        plan=replanned,
        closed=[c.shard_id for c, records in closing if records],
        retired=[c.shard_id for c, records in closing if not records],
        new=new_ids,
        moved_samples=len(pool),
    )
