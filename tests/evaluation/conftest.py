"""A small published version on the tiny models, held-out problems beside it, and an evaluation config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


# Held-out problems: the reference solution of each passes its hidden tests, a wrong one does not.
EVAL_PROBLEMS = [
    {"statement": f"Held-out {i}: read an integer n and print n * {i + 2}.",
     "tests": [{"kind": "stdio", "input": "3\n", "output": f"{3 * (i + 2)}\n", "hidden": False},
               {"kind": "stdio", "input": "5\n", "output": f"{5 * (i + 2)}\n", "hidden": True},
               {"kind": "stdio", "input": "-1\n", "output": f"{-(i + 2)}\n", "hidden": True}],
     "tags": ["heldout"]}
    for i in range(3)
]


def evaluation_config_dict(root: Path, **overrides) -> dict:
    data = {
        "problems": {"selection": {"sources": ["eval"]}},
        "training": {"max_steps": 3, "batch_size": 2, "learning_rate": 1e-3, "max_length": 256, "threads": 1,
                     "logging_steps": 1},
        "sampling": {"max_new_tokens": 24, "batch_size": 4, "samples_per_problem": 2, "pass_k": [1, 2],
                     "repeats": 2, "seed": 7},
        "sandbox_workers": 1,
        "datasets_base": str(root / "datasets"),
        "catalog_path": str(root / "catalog.duckdb"),
        "work_dir": str(root / "evaluations"),
        "lineage": {"directory": str(root / "lineage")},
    }
    data.update(overrides)
    return data


@pytest.fixture(scope="module")
def published(tmp_path_factory, ending_models):
    """`tiny@v1` built by the real build pipeline from 4 prompts (source `unit`), plus 3 held-out
    problems (source `eval`) in the same catalog."""
    from tessy_core.builder import pipeline
    from tessy_core.catalog import Catalog, ingest

    from tests.builder.helpers import build_config, seed_catalog

    root = tmp_path_factory.mktemp("evaluation")
    seed_catalog(root, 4)
    eval_file = root / "eval.jsonl"
    eval_file.write_text("".join(json.dumps(row) + "\n" for row in EVAL_PROBLEMS))
    ingest(Catalog(root / "catalog.duckdb"), [eval_file], source="eval")
    config = build_config(root, ending_models)
    prepared = pipeline.prepare_build(config)
    shards = [pipeline.generate_shard(config, prepared.build_id, s.shard_id) for s in prepared.plan.shards]
    result = pipeline.finish_build(config, prepared, shards)
    assert result.version == "tiny@v1", result.message
    return root
