"""Evaluation configs: the documented GPU config is valid, and the identity ignores where things go."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tessy_core.evaluation.config import EvaluationConfig

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _yaml_blocks(path: Path) -> list[dict]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)]


def test_the_documented_configs_are_valid_evaluation_configs():
    (gpu,) = [b for b in _yaml_blocks(DOCS / "scale-out.md") if "sampling" in b and "training" in b]
    config = EvaluationConfig.model_validate(gpu)
    assert config.training.device == "cuda" and config.training.precision == "bf16"
    assert config.sampling.pass_k == [1, 4] and config.training.max_steps is None
    (reference,) = [b for b in _yaml_blocks(DOCS / "evaluation.md") if "sampling" in b and "training" in b]
    assert EvaluationConfig.model_validate(reference) == EvaluationConfig(
        problems={"limit": 200}, catalog_path=None)


def test_the_identity_is_what_shapes_the_figures():
    one = EvaluationConfig(work_dir="/a", catalog_path="/a/c.duckdb", sandbox_workers=1)
    other = EvaluationConfig(work_dir="/b", catalog_path="/b/c.duckdb", sandbox_workers=8,
                             training={"threads": 4, "logging_steps": 1})
    assert one.identity_hash() == other.identity_hash()
    assert one.identity_hash() != EvaluationConfig(sampling={"seed": 1}).identity_hash()
    assert one.identity_hash() != EvaluationConfig(training={"learning_rate": 1e-3}).identity_hash()
