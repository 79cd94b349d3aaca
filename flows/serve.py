"""Scheduled builds: serve `build_dataset` as a deployment that builds the next version on a cron.

    python -m flows.serve --config build.yaml --cron "0 3 * * *" [--name nightly] [--timezone UTC]

Needs a Prefect server (`PREFECT_API_URL`). Each scheduled run builds from prompts that earlier
builds of the dataset have not used (`new_prompts_only`); a run finding none ends as `empty`. The
process stays up and runs the scheduled (and manually triggered) runs itself; stop it with Ctrl-C.
The same deployment for a work pool lives in `infra/prefect/prefect.yaml`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect.schedules import Cron

from flows.build import build_dataset
from flows.runners import task_runner_for
from tessy_core.builder.config import load_build_config

DEFAULT_CRON = "0 3 * * *"


def serve(config_path: Path, cron: str = DEFAULT_CRON, name: str = "scheduled", timezone: str = "UTC") -> None:
    config = load_build_config(config_path)  # fail here, not at the first scheduled run
    flow = build_dataset.with_options(task_runner=task_runner_for(config.runner))
    flow.serve(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        parameters={"config_path": str(config_path.resolve()), "new_prompts_only": True},
        description=f"Builds the next version of {config.dataset!r} from unused prompts ({cron}, {timezone}).",
        tags=["tessy", f"dataset:{config.dataset}"],
        limit=1,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="build YAML (BuildConfig)")
    parser.add_argument("--cron", default=DEFAULT_CRON, help=f"cron schedule (default {DEFAULT_CRON!r})")
    parser.add_argument("--name", default="scheduled", help="deployment name")
    parser.add_argument("--timezone", default="UTC")
    args = parser.parse_args(argv)
    serve(args.config, args.cron, args.name, args.timezone)


if __name__ == "__main__":
    main()
