"""A small catalog and build configs on the tiny random models, shared by the build and flow tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tessy_core.builder.config import BuildConfig
from tessy_core.catalog import Catalog, ingest

# Random-weight models never write code, so every generated sample is judged `no_code`: tests that
# need a published version publish every generated sample ("all_with_verdicts") with bounds that
# noise meets; `verified_only` then shows the rejection path. The models' boosted end markers also
# turn up inside answers as plain text, so the thinking block is recognised by the exact closing
# the engine writes.
LENIENT_VALIDATION: dict[str, Any] = {
    "publish": "all_with_verdicts",
    "think_close": "\n</think>\n\n",
    "min_pass_rate": 0.0,
    "max_failed_share": 1.0,
    "max_rejected_share": 1.0,
    "teacher_share_band": {"low": 0.0, "high": 1.0},
    "thinking_chars": {"min_chars": 0},
    "answer_chars": {"min_chars": 0},
}


def write_prompts(path: Path, count: int, start: int = 0) -> Path:
    rows = [
        {
            "statement": f"Problem {i}: read an integer n and print n + {i}.",
            "tests": [{"kind": "stdio", "input": "1\n", "output": f"{1 + i}\n"}],
            "tags": ["sum"],
        }
        for i in range(start, start + count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def seed_catalog(root: Path, count: int, source: str = "unit") -> Path:
    catalog_path = root / "catalog.duckdb"
    ingest(Catalog(catalog_path), [write_prompts(root / f"prompts-{source}.jsonl", count)], source=source)
    return catalog_path


def build_config_dict(root: Path, tiny_models: dict[str, Path], **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "dataset": "tiny",
        "description": "A build on tiny random models (plumbing only).",
        "selection": {"sources": ["unit"]},
        "samples_per_prompt": 1,
        "shard_size": 2,
        "generation": {
            "teacher": {"name": "tiny-teacher", "path": str(tiny_models["teacher"]), "family": "harmony",
                        "backend": "transformers", "span_tokens": 6},
            "student": {"name": "tiny-student", "path": str(tiny_models["student"]), "family": "qwen3",
                        "backend": "transformers", "span_tokens": 3},
            "teacher_predictor": {"kind": "lexicon", "phrases": ["Thus", "Compute"]},
            "student_predictor": {"kind": "lexicon", "phrases": ["Okay", "Hmm"]},
            "engine": {"max_thinking_tokens": 48, "max_answer_tokens": 24, "max_attempts": 2, "concurrency": 2,
                       "checkpoint_every": 1, "span_requests": "fixed"},
        },
        "verification": {"enabled": True, "workers": 1},
        "validation": LENIENT_VALIDATION,
        "output": {"base_uri": str(root / "datasets")},
        "lineage": {"directory": str(root / "lineage")},
        "runner": {"kind": "threads", "max_workers": 2},
        "catalog_path": str(root / "catalog.duckdb"),
        "work_dir": str(root / "work"),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def build_config(root: Path, tiny_models: dict[str, Path], **overrides: Any) -> BuildConfig:
    return BuildConfig.model_validate(build_config_dict(root, tiny_models, **overrides))
