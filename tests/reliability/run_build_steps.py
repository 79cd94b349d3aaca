"""`python -m tests.reliability.run_build_steps CONFIG`: a build's steps, in order, without Prefect
(a process the fault tests can kill -9 at a chosen request). Prints the BuildResult as JSON."""

from __future__ import annotations

import sys

from tessy_core.builder import pipeline
from tessy_core.builder.config import load_build_config


def main(path: str) -> None:
    config = load_build_config(path)
    prepared = pipeline.prepare_build(config)
    try:
        shards = [
            pipeline.generate_shard(config, prepared.build_id, shard.shard_id)
            for shard in (prepared.plan.shards if prepared.plan else [])
        ]
        result = pipeline.finish_build(config, prepared, shards)
    except BaseException as error:
        pipeline.fail_build(config, prepared, error)
        raise
    print(result.model_dump_json())


if __name__ == "__main__":
    main(sys.argv[1])
