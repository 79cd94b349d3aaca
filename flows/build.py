"""The `build_dataset` flow: catalog -> shards of generation -> validation -> a published version.

Every step is a function of `tessy_core.builder`; this module only decides what runs as a Prefect
task (preparing, each shard, each whole-version stage of `tessy_core.builder.stages.VERSION_STAGES`),
maps the shards over the task runner, and ends the run in the state that tells the truth about the
build (Failed 'Blocked' when nothing was published, 'Completed with failures' past failed checks).
`flows/dashboard.py` names and tags the run, writes tessy's progress to the run loggers and attaches
the artifacts to the flow run (docs/build.md, "In the Prefect UI").

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

from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.dashboard import (
    BuildLog,
    ShardLog,
    label_run,
    planned_version,
    publish_artifacts,
    shard_state,
)
from flows.runners import task_runner_for
from tessy_core.builder import pipeline
from tessy_core.builder.config import BuildConfig, RunnerConfig, load_build_config
from tessy_core.builder.progress import listening
from tessy_core.builder.results import BuildResult, PreparedBuild, ShardSummary
from tessy_core.builder.stages import (
    VERSION_STAGES,
    Version,
    build_result,
    start_version,
)

# The state name of a run or shard that finished but not cleanly (past a failed/rejected share
# threshold, or published with failed checks): the runs list shows it instead of a plain "Completed".
COMPLETED_WITH_FAILURES = "Completed with failures"
BLOCKED = "Blocked"


@task(name="prepare-build", cache_policy=NO_CACHE)
def prepare(config: BuildConfig) -> PreparedBuild:
    return pipeline.prepare_build(config)


@task(name="generate-shard", task_run_name="generate-{shard_id}", cache_policy=NO_CACHE)
def generate_shard(config: BuildConfig, build_id: str, shard_id: str):
    """One shard; its state says its counts (and is 'Completed with failures' past the thresholds),
    its log what tessy did: samples done and failed with reasons, retries, servers, predictors.
    Retried on failure (`config.runner.shard_retries`): a retry keeps what the shard staged."""
    with listening(ShardLog(get_run_logger(), build_id, shard_id)):
        summary = pipeline.generate_shard(config, build_id, shard_id)
    return shard_state(summary, config.validation, failed_name=COMPLETED_WITH_FAILURES)


# One task per whole-version stage, so each has its own state (and duration) in the UI.
STAGE_TASKS = [task(stage.run, name=stage.name, cache_policy=NO_CACHE) for stage in VERSION_STAGES]


def finish(config: BuildConfig, prepared: PreparedBuild, shards: list[ShardSummary]) -> BuildResult:
    version: Version = start_version(config, prepared, shards)
    for stage_task in STAGE_TASKS:
        version = stage_task(version)
    return build_result(version)


def artifact_key(dataset: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "build-" + re.sub(r"[^a-z0-9-]+", "-", dataset.lower()).strip("-")


def final_state(result: BuildResult):
    """The flow run's state: Failed ('Blocked') when validation kept the version from publishing,
    'Completed with failures' when it published past failed checks, Completed otherwise; the
    message gives the counts and the failed checks, the data is the `BuildResult`."""
    from tessy_core.builder.report import state_message

    message = state_message(result)
    if result.status == "blocked":
        return Failed(name=BLOCKED, message=message, data=result)
    if result.status == "published" and not result.validation.get("success", True):
        return Completed(name=COMPLETED_WITH_FAILURES, message=message, data=result)
    return Completed(message=message, data=result)


@flow(name="build-dataset", task_runner=ThreadPoolTaskRunner(max_workers=RunnerConfig().max_workers))
def build_dataset(
    config: BuildConfig | None = None,
    config_path: str | None = None,
    new_prompts_only: bool | None = None,
) -> BuildResult:
    """Build the next version of a dataset from a `BuildConfig` (or a YAML file of one).

    `new_prompts_only` overrides the config's setting (scheduled builds set it). Running the same
    config again after a failure or a kill continues the unfinished build. The `BuildResult` is the
    data of the run's final state, a blocked build's included (`run_build` returns it).
    """
    config = resolve_config(config, config_path, new_prompts_only)
    logger = get_run_logger()
    planned = planned_version(config)
    label_run(config, planned, logger=logger)
    with listening(BuildLog(logger)):
        prepared = prepare(config)
        if prepared.plan is None:
            return conclude(config, pipeline.empty_result(config), logger, planned)
        shard_task = generate_shard.with_options(
            retries=config.runner.shard_retries, retry_delay_seconds=config.runner.shard_retry_delay_s
        )
        try:
            futures = shard_task.map(
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
    return conclude(config, result, logger, planned)


def conclude(config: BuildConfig, result: BuildResult, logger, planned: int | None):
    """Name and tag the run for what it built, attach the artifacts to it, log the headline, and
    end in the state that tells the truth about the build."""
    label_run(config, result.version_number or planned, result=result, logger=logger)
    publish_artifacts(config, result, artifact_key(result.dataset), logger=logger)
    return final_state(result)


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
    state = flow_on_runner(config=config, return_state=True)
    if return_state:
        return state
    # A blocked build ends Failed but still has its result (nothing published, and why); any other
    # failure raises its error here.
    result = state.result(raise_on_failure=False)
    return result if isinstance(result, BuildResult) else state.result()
