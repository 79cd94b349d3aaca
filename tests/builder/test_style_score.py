"""The style-score stage: a shard scores its rows with the student as it stages them, and the quality
gate judges the staged figures without opening a model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import polars as pl
import pytest

from tessy_core.builder.shards import plan_build, run_shard
from tessy_core.builder.workspace import BuildWorkspace
from tessy_core.catalog import map_row
from tessy_core.quality.style import StyleGate, gate_version_style
from tessy_core.rows import StagedSample
from tests.builder.helpers import write_prompts

STUDENT_PHRASES = ["Okay", "Hmm", "Wait", "so", "let me"]


@pytest.fixture(scope="module")
def ending_student_config(tmp_path_factory):
    """Tiny models whose end markers are likely, so the student's own references finish."""
    from tessy_core.config import GenerationConfig
    from tests.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("style_models")
    teacher = build_tiny_model(root / "teacher", role="teacher", seed=1, end_probability=0.12)
    student = build_tiny_model(root / "student", role="student", seed=2, end_probability=0.12)
    return GenerationConfig.model_validate({
        "teacher": {"name": "t", "path": str(teacher), "family": "harmony", "backend": "transformers"},
        "student": {"name": "s", "path": str(student), "family": "qwen3", "backend": "transformers"},
        "teacher_predictor": {"kind": "lexicon", "phrases": ["Thus"]},
        "student_predictor": {"kind": "lexicon", "phrases": STUDENT_PHRASES},
        "engine": {"max_thinking_tokens": 64, "max_answer_tokens": 24, "max_attempts": 3, "concurrency": 2,
                   "span_requests": "fixed"},
    })


@pytest.mark.slow  # loads two tiny models, generates four samples and the student's references
def test_a_shard_stages_style_scores_with_its_rows_and_the_gate_judges_them(tmp_path: Path, ending_student_config):
    from tessy_core.chat import load_tokenizer

    lines = write_prompts(tmp_path / "p.jsonl", 4).read_text().splitlines()
    prompts = [map_row(json.loads(line), source="unit") for line in lines]
    generation = ending_student_config
    plan = plan_build("ds", prompts, config_hash="h", generation_hash=generation.config_hash(),
                      samples_per_prompt=1, shard_size=2)
    workspace = BuildWorkspace(tmp_path / "work", plan.build_id)
    workspace.freeze_plan(plan, prompts)
    gate = StyleGate(reference_prompts=3, max_mean_student_nll=100.0, min_tfidf_similarity=0.0)
    for shard in plan.shards:
        asyncio.run(run_shard(workspace, plan, shard, generation, style=gate))

    rows = [StagedSample.model_validate(r) for r in workspace.iter_records(plan)]
    generated = [r for r in rows if r.status == "ok"]
    assert generated and all(r.student_tokens and r.student_nll is not None for r in generated)
    assert all(r.student_nll is None and r.student_reference is None for r in rows if r.status != "ok")
    with_reference = {r.prompt_id for r in rows if r.student_reference}
    assert 1 <= len(with_reference) <= 3

    tokenizer = load_tokenizer(generation.student.path)
    frame = pl.DataFrame([r.model_dump(mode="json") for r in rows], infer_schema_length=None)
    report = gate_version_style(frame, gate, lambda text: tokenizer.encode(text, add_special_tokens=False))
    assert report.success, report.summary_markdown
    assert report.version["samples_scored"] == len(generated)
    assert 1 <= report.version["tfidf_prompts"] <= 3
    assert 0 <= report.version["style_token_rate_mean"] <= 1
    # Rerunning the shards rescores nothing: the rows are staged, with their scores.
    assert all(workspace.shard_done(s.shard_id) for s in plan.shards)


def test_a_build_with_the_style_gate_scores_on_its_shards_and_publishes_without_the_scores(tmp_path, ending_models):
    from tessy_core.builder import pipeline
    from tessy_core.publish import scan
    from tests.builder.helpers import LENIENT_VALIDATION, build_config, seed_catalog

    seed_catalog(tmp_path, 4)
    style = {"max_mean_student_nll": 100.0, "min_tfidf_similarity": 0.0, "reference_prompts": 2}
    config = build_config(tmp_path, ending_models, validation={**LENIENT_VALIDATION, "style": style})
    prepared = pipeline.prepare_build(config)
    shards = [pipeline.generate_shard(config, prepared.build_id, s.shard_id) for s in prepared.plan.shards]
    result = pipeline.finish_build(config, prepared, shards)

    assert result.status == "published", result.message
    figures = result.figures["style"]
    assert figures["samples_scored"] == result.figures["generated"] and figures["student_nll_mean"] is not None
    assert [c["check"] for c in result.validation["checks"] if c["check"].startswith("style_")] == [
        "style_student_nll", "style_tfidf_similarity"]
    workspace = BuildWorkspace(Path(config.work_dir), prepared.build_id)
    staged = [StagedSample.model_validate(r) for r in workspace.iter_records(prepared.plan)]
    assert sum(1 for r in staged if r.student_tokens is not None) == figures["samples_scored"]
    published = scan(config.output.base_uri, result.version).collect()
    assert not {"student_nll", "student_tokens", "style_token_rate", "student_reference"} & set(published.columns)
