"""Where a build's shard tasks run, chosen by `BuildConfig.runner`."""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tessy_core.builder.config import RunnerConfig


class RunnerUnavailable(RuntimeError):
    pass


def task_runner_for(runner: RunnerConfig) -> TaskRunner:
    """Threads in this process (default), or a Ray cluster through prefect-ray.

    On Ray, shards run on the cluster's workers: `work_dir` must be a folder every worker and the
    driver share, and the models must be reachable from the workers (HTTP endpoints or paths).
    """
    if runner.kind == "threads":
        return ThreadPoolTaskRunner(max_workers=runner.max_workers)
    if runner.kind == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError as error:
            raise RunnerUnavailable(
                "runner kind 'ray' needs prefect-ray and ray: pip install 'tessy[ray]'"
            ) from error
        return RayTaskRunner(address=runner.ray_address) if runner.ray_address else RayTaskRunner()
    raise RunnerUnavailable(f"unknown runner kind {runner.kind!r}")
