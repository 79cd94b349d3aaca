"""The `train_predictor` flow: traces -> annotations -> labels -> a trained, registered predictor.

Every step is a function of `tessy_core.predictors.pipeline`; this module only makes each one a
Prefect task and publishes the result as artifacts. Stages keep their results in the predictor's
work folder, so a retried or re-run flow resumes where it stopped.

    from flows.train_predictor import train_predictor
    train_predictor(load_pipeline_config("predictor.yaml").model_dump(mode="json"))
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tessy_core.predictors import pipeline
from tessy_core.predictors.annotation import AnnotationStats, WindowAnnotation
from tessy_core.predictors.labels import LabelledText
from tessy_core.predictors.pipeline import PipelineReport, PredictorPipelineConfig
from tessy_core.predictors.training import PredictorReport, train_predictor as train_model


@task(name="sample-traces", cache_policy=NO_CACHE, retries=1)
def sample_traces(config: PredictorPipelineConfig) -> dict[str, str]:
    return pipeline.stage_traces(config)


@task(name="annotate-windows", cache_policy=NO_CACHE, retries=1)
def annotate(config: PredictorPipelineConfig, traces: dict[str, str]) -> list[WindowAnnotation]:
    return pipeline.stage_annotate(config, traces)


@task(name="build-labels", cache_policy=NO_CACHE)
def build_labels(
    config: PredictorPipelineConfig, traces: dict[str, str], annotations: list[WindowAnnotation]
) -> tuple[list[LabelledText], list[LabelledText]]:
    return pipeline.stage_labels(config, traces, annotations)


@task(name="train-predictor", cache_policy=NO_CACHE)
def train(config: PredictorPipelineConfig, labelled: tuple[list[LabelledText], list[LabelledText]]) -> PredictorReport:
    return train_model(labelled[0], labelled[1], config.training, config.predictor_dir)


@task(name="register-predictor", cache_policy=NO_CACHE)
def register(config: PredictorPipelineConfig, report: PredictorReport, stats: AnnotationStats | None) -> bool:
    return pipeline.stage_register(config, report, stats)


@flow(name="train_predictor", log_prints=True)
def train_predictor(config: dict) -> dict:
    """Build one predictor version from a pipeline config (a dict, as Prefect stores parameters)."""
    settings = PredictorPipelineConfig.model_validate(config)
    traces: dict[str, str] = {}
    annotations: list[WindowAnnotation] = []
    stats = None
    if settings.labelled_file is None:
        traces = sample_traces(settings)
        annotations = annotate(settings, traces)
        stats = AnnotationStats.of(annotations)
    else:
        settings.work_dir.mkdir(parents=True, exist_ok=True)
    labelled = build_labels(settings, traces, annotations)
    report = train(settings, labelled)
    pipeline.finish_folder(settings, stats)
    registered = register(settings, report, stats) if settings.register_in_catalog else None
    result = PipelineReport(
        predictor=report, traces=len(traces), annotation=stats.summary() if stats else None,
        train_texts=len(labelled[0]), valid_texts=len(labelled[1]), registered=registered,
        catalog=str(settings.catalog_path()) if settings.register_in_catalog else None,
    )
    _publish_artifacts(result)
    return result.model_dump(mode="json")


def _publish_artifacts(result: PipelineReport) -> None:
    report = result.predictor
    key = f"predictor-{report.name}-{report.version}".lower().replace(".", "-").replace("_", "-")
    rows = []
    for label, metrics in (("untrained head", report.baseline), ("kept checkpoint", report.valid)):
        rows.append({
            "checkpoint": label, "token_accuracy": round(metrics.token_accuracy, 4),
            "style_starts_f1": round(metrics.style_starts.f1, 4),
            "capability_starts_f1": round(metrics.capability_starts.f1, 4),
        })
    create_table_artifact(rows, key=f"{key}-metrics", description=f"Validation metrics of {report.name}@{report.version}")
    lines = [f"# {report.name}@{report.version}", "", f"Folder: `{report.path}`", ""]
    if result.annotation:
        lines.append(f"Annotation: {result.annotation['windows']} windows, rejected share "
                     f"{result.annotation['rejected_share']:.4f}")
    create_markdown_artifact("\n".join(lines), key=f"{key}-summary", description="Predictor build summary")
