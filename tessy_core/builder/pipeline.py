"""A dataset build as plain functions: the Prefect flow (`flows/build.py`) runs each as a task.

    prepared = prepare_build(config)                 # select prompts (or resume), plan, register
    for shard in prepared.plan.shards:               # anywhere: threads, a Ray cluster
        generate_shard(config, prepared.build_id, shard.shard_id)     # per row: generate, verify
    result = finish_build(config, prepared, shard_summaries)         # the whole-version stages

`finish_build` runs `tessy_core.builder.stages.VERSION_STAGES` in order (stage the rows, style gate,
validate, publish, register the version, account, lineage, keep the rejected rows).

Every sample of a build ends in the catalog as published, rejected (with the reason) or failed
(with the reason). A build killed at any point is continued by running the same config again:
`prepare_build` finds the unfinished build and its frozen plan, `generate_shard` skips finished
shards and finished samples, and `finish_build` never publishes a second version for one build.
"""

from __future__ import annotations

from tessy_core.builder.config import BuildConfig
from tessy_core.builder.generate import generate_shard
from tessy_core.builder.lineage import BuildLineage
from tessy_core.builder.prepare import open_catalog, prepare_build
from tessy_core.builder.results import (
    BuildResult,
    PreparedBuild,
    ShardSummary,
    ShardTally,
)
from tessy_core.builder.stages import (
    VERSION_STAGES,
    build_result,
    server_usage,
    start_version,
)
from tessy_core.catalog import BuildStatus, record_build_finish

__all__ = [
    "BuildResult", "PreparedBuild", "ShardSummary", "ShardTally",
    "empty_result", "fail_build", "finish_build", "generate_shard", "prepare_build", "server_usage",
]


def finish_build(config: BuildConfig, prepared: PreparedBuild, shards: list[ShardSummary]) -> BuildResult:
    """Validate every staged sample, publish the version, and account for every sample."""
    if prepared.plan is None:
        return empty_result(config)
    version = start_version(config, prepared, shards)
    for stage in VERSION_STAGES:
        version = stage.run(version)
    return build_result(version)


def empty_result(config: BuildConfig) -> BuildResult:
    """The result of a build whose selection matched no prompt."""
    return BuildResult(
        build_id=None, dataset=config.dataset, status="empty",
        message=f"no prompt in the catalog matches the selection of {config.dataset!r}"
        + (" that earlier builds have not used" if config.new_prompts_only else ""),
    )


def fail_build(config: BuildConfig, prepared: PreparedBuild, error: BaseException) -> None:
    """Record a build that stopped on an error: status failed (resumable), lineage FAIL."""
    if prepared.plan is None:
        return
    catalog = open_catalog(config)
    record_build_finish(catalog, prepared.build_id, BuildStatus.FAILED)
    BuildLineage(config, catalog).fail(prepared, error)
