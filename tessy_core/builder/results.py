"""What the build's steps hand each other and return: a prepared build, shard summaries, the result."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tessy_core.builder.workspace import BuildPlan


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PreparedBuild(_Model):
    """A planned (or resumed) build: what the shard steps and the final step need to know."""

    build_id: str
    dataset: str
    identity_hash: str
    work_dir: str
    catalog_path: str
    plan: BuildPlan | None = Field(None, description="None when the selection matched no prompt")
    resumed: bool = False
    shards_already_done: int = 0
    samples_already_done: int = 0
    lineage_run_id: str

    @property
    def total_samples(self) -> int:
        return len(self.plan.prompt_ids) * self.plan.samples_per_prompt if self.plan else 0


class ShardTally(_Model):
    """A shard's staged samples as the publish policy labels them (before the version-wide style gate
    and suite): what its task's state message says."""

    publishable: int = 0
    rejected: int = 0
    failed: int = 0
    reasons: dict[str, dict[str, int]] = Field(default_factory=dict, description="rejected/failed -> reason -> n")
    examples: dict[str, list[str]] = Field(default_factory=dict, description="reason -> first sample ids")
    retried: int = Field(0, description="samples that needed more than one attempt")

    @property
    def total(self) -> int:
        return self.publishable + self.rejected + self.failed


class ShardSummary(_Model):
    shard_id: str
    samples: int
    skipped: bool = Field(description="finished by an earlier run of this build")
    resumed_with: int = 0
    samples_ok: int = 0
    samples_failed: int = 0
    models: dict[str, dict[str, int]] = Field(default_factory=dict)
    wall_s: float = 0.0
    failure_reasons: dict[str, int] = Field(default_factory=dict, description="generation failures by reason")
    servers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="role -> the HTTP backend's model id and per-replica counters"
    )
    identities: dict[str, str] = Field(default_factory=dict, description="model and predictor ids, config hash")
    tally: ShardTally | None = Field(None, description="the shard's samples under the publish policy")


class BuildResult(_Model):
    """What a build produced: the return value of `build_dataset` and the JSON of `tessy build`."""

    build_id: str | None
    dataset: str
    status: Literal["published", "blocked", "empty"]
    message: str
    resumed: bool = False
    counts: dict[str, int] = Field(default_factory=dict, description="outcome -> samples (catalog accounting)")
    reasons: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="rejected/failed -> reason -> samples"
    )
    version: str | None = Field(None, description="NAME@vN")
    version_number: int | None = None
    uri: str | None = None
    already_published: bool = Field(False, description="an earlier run of this build had published it")
    usage: dict[str, dict[str, int]] = Field(default_factory=dict, description="model role -> requests/tokens")
    figures: dict[str, Any] = Field(default_factory=dict)
    validation: dict[str, Any] = Field(default_factory=dict)
    shards: dict[str, int] = Field(default_factory=dict)
    wall_s: float = 0.0
    examples: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict, description="rejected/failed -> reason -> the first sample ids"
    )
    rejected_uri: str | None = Field(None, description="Parquet of every sample not published, with reasons")
    servers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="role -> server-side requests/tokens/errors/failovers and endpoints"
    )
    identities: dict[str, str] = Field(default_factory=dict, description="model and predictor ids, config hash")


EXAMPLES_PER_REASON = 5


def reason_code(reason: str) -> str:
    """`generation failed: repetition: ...` -> `generation failed: repetition`."""
    head, _, rest = reason.partition(": ")
    return f"{head}: {rest.split(':', 1)[0]}" if rest else head
