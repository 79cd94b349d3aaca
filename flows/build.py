"""The `build_dataset` flow: catalog -> shards of generation -> validation -> a published version.

Every step is a function of `tessy_core.builder.pipeline`; this module only decides what runs as a
Prefect task, maps the shards over the task runner, and publishes the build's artifacts.

    from flows import run_build
    result = run_build(load_build_config("build.yaml"))    # honours config.runner
    result.counts, result.version, result.uri

The flow's parameters are stored by Prefect (and shown in its UI): keep secrets such as API keys
out of the config, in the environment the backends read them from.
"""

# No `from __future__ import annotations`: Prefect builds the parameter model from these annotations
# when it loads the flow from its entrypoint (served and worker runs), and needs real types.
import re
from pathlib import Path

from prefect import flow, task, unmapped
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from tessy_core.builder import pipeline, report
from tessy_core.builder.config import BuildConfig, RunnerConfig, load_build_config
from tessy_core.builder.pipeline import BuildResult, PreparedBuild, ShardSummary

from flows.runners import task_runner_for


@task(name="prepare-build", cache_policy=NO_CACHE)
def prepare(config: BuildConfig) -> PreparedBuild:
    return pipeline.prepare_build(config)


@task(name="generate-shard", task_run_name="generate-{shard_id}", cache_policy=NO_CACHE)
def generate_shard(config: BuildConfig, build_id: str, shard_id: str) -> ShardSummary:
    return pipeline.generate_shard(config, build_id, shard_id)


@task(name="validate-and-publish", cache_policy=NO_CACHE)
def finish(config: BuildConfig, prepared: PreparedBuild, shards: list[ShardSummary]) -> BuildResult:
    return pipeline.finish_build(config, prepared, shards)


@task(name="publish-artifacts", cache_policy=NO_CACHE)
def publish_artifacts(result: BuildResult) -> None:
    key = artifact_key(result.dataset)
    create_table_artifact(
        report.outcome_rows(result), key=f"{key}-outcomes", description=f"Samples per outcome, {result.dataset}"
    )
    if result.usage:
        create_table_artifact(
            report.usage_rows(result), key=f"{key}-model-usage", description="Requests and tokens per model"
        )
    if result.figures:
        create_table_artifact(report.figure_rows(result), key=f"{key}-quality", description="Quality figures")
    if result.uri:
        create_link_artifact(
            result.uri, link_text=result.version, key=f"{key}-version", description="The published version"
        )
    create_markdown_artifact(report.report_markdown(result), key=f"{key}-report", description="Build report")


def artifact_key(dataset: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "build-" + re.sub(r"[^a-z0-9-]+", "-", dataset.lower()).strip("-")


@flow(name="build-dataset", task_runner=ThreadPoolTaskRunner(max_workers=RunnerConfig().max_workers))
def build_dataset(
    config: BuildConfig | None = None,
    config_path: str | None = None,
    new_prompts_only: bool | None = None,
) -> BuildResult:
    """Build the next version of a dataset from a `BuildConfig` (or a YAML file of one).

    `new_prompts_only` overrides the config's setting (scheduled builds set it). Running the same
    config again after a failure or a kill continues the unfinished build.
    """
    config = resolve_config(config, config_path, new_prompts_only)
    prepared = prepare(config)
    if prepared.plan is None:
        result = finish(config, prepared, [])
        publish_artifacts(result)
        return result
    try:
        futures = generate_shard.map(
            config=unmapped(config),
            build_id=unmapped(prepared.build_id),
            shard_id=[shard.shard_id for shard in prepared.plan.shards],
        )
        wait(futures)  # let every shard settle before judging: a failed one must not orphan others
        summaries = futures.result()
        result = finish(config, prepared, summaries)
    except BaseException as error:
        pipeline.fail_build(config, prepared, error)
        raise
    publish_artifacts(result)
    return result


def resolve_config(
    config: BuildConfig | None, config_path: str | None, new_prompts_only: bool | None = None
) -> BuildConfig:
    if (config is None) == (config_path is None):
        raise ValueError("give exactly one of `config` and `config_path`")
    resolved = config if config is not None else load_build_config(Path(config_path))
    if new_prompts_only is not None:
        resolved = resolved.model_copy(update={"new_prompts_only": new_prompts_only})
    return resolved


def run_build(config: BuildConfig, *, return_state: bool = False):
    """Run `build_dataset` on the task runner `config.runner` asks for; returns the `BuildResult`
    (or the flow run's final state with `return_state=True`)."""
    flow_on_runner = build_dataset.with_options(task_runner=task_runner_for(config.runner))
    return flow_on_runner(config=config, return_state=return_state)
