"""The `evaluate_dataset` flow: a published version -> a fine-tuned student -> base vs tuned figures.

Every step is a function of `tessy_core.evaluation.pipeline`; this module only makes them Prefect
tasks and publishes the result as artifacts (a table and a chart).

    from flows.evaluate import evaluate_dataset
    result = evaluate_dataset(ref="toyworld-tessy@v1", config=EvaluationConfig(...))
"""

# No `from __future__ import annotations`: Prefect builds the parameter model from these annotations.
import re
import time
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tessy_core.catalog import Catalog
from tessy_core.evaluation import pipeline
from tessy_core.evaluation.config import EvaluationConfig, load_evaluation_config
from tessy_core.evaluation.metrics import ModelFigures
from tessy_core.evaluation.pipeline import EvaluationResult, PreparedEvaluation
from tessy_core.evaluation.records import list_evaluations
from tessy_core.evaluation.report import chart_markdown, comparison_rows
from tessy_core.evaluation.training import TrainingReport


@task(name="prepare-evaluation", cache_policy=NO_CACHE)
def prepare(config: EvaluationConfig, ref: str, base: str | None) -> PreparedEvaluation:
    return pipeline.prepare_evaluation(config, ref, base)


@task(name="finetune-student", cache_policy=NO_CACHE)
def finetune(config: EvaluationConfig, prepared: PreparedEvaluation) -> TrainingReport:
    return pipeline.finetune_student(config, prepared)


@task(name="evaluate-model", task_run_name="evaluate-{role}", cache_policy=NO_CACHE)
def evaluate_model(
    config: EvaluationConfig, prepared: PreparedEvaluation, role: str, model_path: str | None = None
) -> ModelFigures:
    return pipeline.evaluate_model(config, prepared, role, model_path)


@task(name="record-evaluation", cache_policy=NO_CACHE)
def finish(
    config: EvaluationConfig, prepared: PreparedEvaluation, training: TrainingReport, base: ModelFigures,
    tuned: ModelFigures, started: float,
) -> EvaluationResult:
    return pipeline.finish_evaluation(config, prepared, training, base, tuned, started)


@task(name="publish-evaluation-artifacts", cache_policy=NO_CACHE)
def publish_artifacts(result: EvaluationResult, catalog_path: str) -> None:
    records = list_evaluations(Catalog(catalog_path), result.ref.split("@")[0], result.ref.split("@")[1])
    record = next(r for r in records if r.evaluation_id == result.evaluation_id)
    key = artifact_key(result.ref)
    create_table_artifact(comparison_rows([record]), key=f"{key}-figures",
                          description=f"Base vs fine-tuned student, {result.ref}")
    create_markdown_artifact(chart_markdown(record), key=f"{key}-chart", description=f"SFT evaluation of {result.ref}")


def artifact_key(ref: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "evaluate-" + re.sub(r"[^a-z0-9-]+", "-", ref.lower()).strip("-")


@flow(name="evaluate-dataset")
def evaluate_dataset(
    ref: str,
    config: EvaluationConfig | None = None,
    config_path: str | None = None,
    base: str | None = None,
) -> EvaluationResult:
    """Fine-tune the student on `ref` (NAME@vN) and measure base vs fine-tuned on held-out problems."""
    if config is not None and config_path is not None:
        raise ValueError("give at most one of `config` and `config_path`")
    config = config or load_evaluation_config(Path(config_path) if config_path else None)
    started = time.perf_counter()
    prepared = prepare(config, ref, base)
    try:
        training = finetune(config, prepared)
        base_figures = evaluate_model(config, prepared, "base")
        tuned_figures = evaluate_model(config, prepared, "tuned", training.output_dir)
        result = finish(config, prepared, training, base_figures, tuned_figures, started)
    except BaseException as error:
        pipeline.fail_evaluation(config, prepared, error)
        raise
    publish_artifacts(result, prepared.catalog_path)
    return result
