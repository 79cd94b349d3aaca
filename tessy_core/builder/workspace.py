"""A build's local staging area: its plan, finished samples per shard, and in-flight checkpoints.

Everything a restart needs lives here, written so that a crash at any point loses at most the
samples in flight (and, thanks to checkpoints, only their last few steps):
- `plan.json` and `prompts.jsonl`: the frozen selection and sharding, written once, atomically;
- `shards/<shard>.jsonl`: one line per finished sample, appended and fsynced;
- `shards/<shard>.done`: written atomically once every sample of the shard is in its file;
- `checkpoints/<sample>.json`: the spans so far of each running sample, replaced atomically.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict

from tessy_core.catalog.schema import PromptRecord
from tessy_core.engine.records import SampleCheckpoint
from tessy_core.files import resume_jsonl, write_atomic

log = logging.getLogger(__name__)


class ShardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    shard_id: str
    prompt_ids: list[str]
    # None: every sample of `prompt_ids`. A list: only these samples (shards written by a re-split on
    # resume, which moves samples, not whole prompts, between shards).
    sample_ids: list[str] | None = None


class BuildPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    build_id: str
    dataset: str
    config_hash: str
    # Sample ids come from the generation config alone (prompt, index, mode, generation hash): a
    # different selection, output place or validation policy yields the same samples.
    generation_hash: str
    samples_per_prompt: int
    shards: list[ShardSpec]

    @property
    def prompt_ids(self) -> list[str]:
        """Every prompt of the build once, in plan order (after a re-split a prompt's samples can
        sit in two shards)."""
        return list(dict.fromkeys(pid for shard in self.shards for pid in shard.prompt_ids))


class PlanMismatch(RuntimeError):
    """The workspace belongs to a build with another configuration."""


class BuildWorkspace:
    def __init__(self, root: Path, build_id: str):
        self.dir = Path(root) / build_id
        self.shards_dir = self.dir / "shards"
        self.checkpoints_dir = self.dir / "checkpoints"
        # Private to the build's user: prompts.jsonl holds every hidden test with its expected output.
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        for directory in (self.shards_dir, self.checkpoints_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    # --- plan -------------------------------------------------------------------------------
    def freeze_plan(self, plan: BuildPlan, prompts: list[PromptRecord]) -> BuildPlan:
        """Write the plan on first run; on a rerun return the stored one (same config required)."""
        existing = self.load_plan()
        if existing is not None:
            if existing.config_hash != plan.config_hash:
                raise PlanMismatch(
                    f"{self.dir}: build {plan.build_id} was planned with config {existing.config_hash}, "
                    f"not {plan.config_hash}"
                )
            return existing
        write_atomic(self.dir / "prompts.jsonl", "".join(p.model_dump_json() + "\n" for p in prompts), mode=0o600)
        write_atomic(self.dir / "plan.json", plan.model_dump_json(indent=2))
        return plan

    def replace_plan(self, plan: BuildPlan) -> None:
        """Store a re-planned version of this build's plan (same build, same configuration)."""
        existing = self.load_plan()
        if existing is None or (existing.build_id, existing.config_hash) != (plan.build_id, plan.config_hash):
            raise PlanMismatch(f"{self.dir}: a re-plan must keep the build id and config of the stored plan")
        write_atomic(self.dir / "plan.json", plan.model_dump_json(indent=2))

    def load_plan(self) -> BuildPlan | None:
        path = self.dir / "plan.json"
        return BuildPlan.model_validate_json(path.read_text()) if path.exists() else None

    def load_prompts(self) -> dict[str, PromptRecord]:
        with (self.dir / "prompts.jsonl").open() as lines:
            prompts = (PromptRecord.model_validate_json(line) for line in lines if line.strip())
            return {p.prompt_id: p for p in prompts}

    # --- finished samples ---------------------------------------------------------------------
    def _shard_file(self, shard_id: str) -> Path:
        return self.shards_dir / f"{shard_id}.jsonl"

    def finished_records(self, shard_id: str) -> dict[str, dict[str, Any]]:
        """Records already written for a shard, by sample id. A torn last line (crash mid-write)
        is ignored and cut off, so the next append starts clean."""
        return {record["sample_id"]: record for record in resume_jsonl(self._shard_file(shard_id))}

    def append_record(self, shard_id: str, record: dict[str, Any]) -> None:
        with self._shard_file(shard_id).open("a") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def mark_shard_done(self, shard_id: str, summary: dict[str, Any]) -> None:
        write_atomic(self.shards_dir / f"{shard_id}.done", json.dumps(summary, indent=2))

    def shard_done(self, shard_id: str) -> dict[str, Any] | None:
        path = self.shards_dir / f"{shard_id}.done"
        return json.loads(path.read_text()) if path.exists() else None

    def iter_records(self, plan: BuildPlan) -> Iterator[dict[str, Any]]:
        for shard in plan.shards:
            yield from self.finished_records(shard.shard_id).values()

    # --- in-flight checkpoints ---------------------------------------------------------------
    def _checkpoint_file(self, sample_id: str) -> Path:
        return self.checkpoints_dir / f"{sample_id}.json"

    def save_checkpoint(self, state: SampleCheckpoint) -> None:
        # Not fsynced: a checkpoint only saves work. One lost to a power cut (or left unreadable)
        # costs its sample the steps since the one before, never data (see load_checkpoint), and
        # an fsync per checkpoint would cost tens of ms on a busy disk.
        write_atomic(self._checkpoint_file(state.sample_id), json.dumps(state.to_record()), durable=False)

    def load_checkpoint(self, sample_id: str) -> SampleCheckpoint | None:
        """The sample's last checkpoint; None when it has none or it cannot be read (the sample
        then starts over instead of failing its shard)."""
        path = self._checkpoint_file(sample_id)
        if not path.exists():
            return None
        try:
            state = SampleCheckpoint.from_record(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as error:
            log.warning("ignoring unreadable checkpoint %s (%s); the sample starts over", path, error)
            path.unlink(missing_ok=True)
            return None
        if state.sample_id != sample_id:
            log.warning("ignoring checkpoint %s of another sample (%s)", path, state.sample_id)
            return None
        return state

    def drop_checkpoint(self, sample_id: str) -> None:
        self._checkpoint_file(sample_id).unlink(missing_ok=True)
