"""`tessy predictor ...`: build boundary predictors and evaluate any predictor on labelled text."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tessy_core.cli.output import emit, fail, progress_bars

app = typer.Typer(help="Boundary predictors: annotate, train, evaluate, version.", no_args_is_help=True)


@app.command("train")
def train(
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False, help="YAML pipeline config"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Sample traces, annotate them, train, evaluate, write a versioned predictor and register it.

    Running it again resumes where it stopped (traces, annotations, the last training checkpoint).
    """
    from pydantic import ValidationError

    from tessy_core.predictors.pipeline import load_pipeline_config, run_pipeline
    from tessy_core.predictors.training import TrainingProgress

    try:
        pipeline = load_pipeline_config(config)
    except (ValidationError, ValueError, OSError) as error:
        fail(f"invalid config {config}: {error}", as_json)
        return
    with progress_bars("[bold]{task.description}", as_json) as progress:
        tasks: dict[str, int] = {}

        def bar(name: str, total: int | None):
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total, status="")
            return tasks[name]

        def on_stage(stage: str, done: int, total: int | None) -> None:
            progress.update(bar(stage, total), completed=done, total=total)

        def on_training(event: TrainingProgress) -> None:
            task = bar("train", event.total_steps)
            status = f"loss {event.loss:.4f}" if event.loss is not None else ""
            if event.valid is not None:
                status = f"valid acc {event.valid.token_accuracy:.3f} boundary F1 {event.valid.boundary_f1:.3f}"
            if event.event == "resume":
                status = f"resumed at step {event.step}"
            progress.update(task, completed=event.step, total=event.total_steps, status=status)

        try:
            report = run_pipeline(pipeline, progress=on_stage, training_progress=on_training)
        except (ValueError, RuntimeError, OSError) as error:
            fail(str(error), as_json, work_dir=str(pipeline.work_dir))
            return
    payload = {"ok": True, "path": report.predictor.path, **report.model_dump(mode="json")}
    emit(payload, as_json, _metrics_table(f"{report.predictor.name}@{report.predictor.version}", report.predictor.baseline, report.predictor.valid))


@app.command("eval")
def evaluate(
    predictor: Path = typer.Option(..., "--predictor", exists=True, file_okay=False, help="predictor folder"),
    data: Path = typer.Option(..., "--data", exists=True, dir_okay=False, help="JSONL of {text, style_spans}"),
    window_tokens: Optional[int] = typer.Option(None, "--window-tokens", min=2, help="override the predictor's window"),
    tolerance: int = typer.Option(0, "--tolerance", min=0, help="boundary match tolerance in tokens"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Token accuracy and boundary precision / recall / F1 of a predictor on labelled text."""
    from tessy_core.predictors.evaluation import evaluate_predictor
    from tessy_core.predictors.labels import read_labelled_jsonl

    try:
        rows = read_labelled_jsonl(data)
        metrics = evaluate_predictor(predictor, rows, window_tokens=window_tokens, tolerance_tokens=tolerance)
    except (ValueError, OSError) as error:
        fail(str(error), as_json)
        return
    payload = {"ok": True, "predictor": str(predictor), "data": str(data), **metrics.model_dump(), "boundary_f1": metrics.boundary_f1}
    emit(payload, as_json, _metrics_table(str(predictor), None, metrics))


@app.command("stops")
def stops(
    predictor: Path = typer.Option(..., "--predictor", exists=True, file_okay=False, help="predictor folder"),
    data: Path = typer.Option(..., "--data", exists=True, dir_okay=False, help="labelled JSONL {text, style_spans}"),
    role: str = typer.Option(..., "--role", help="teacher or student: whose handovers the stops end"),
    min_precision: float = typer.Option(0.9, "--min-precision", min=0.0, max=1.0),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Mine handover stop strings from labelled thinking text into the predictor folder
    (handover_stops.json; the engine sends them to the servers, docs/engine.md). Trained predictors
    get theirs from their own training labels; use this for released ones."""
    from tessy_core.predictors.labels import read_labelled_jsonl
    from tessy_core.predictors.stops import mine_handover_stops, write_handover_stops

    if role not in ("teacher", "student"):
        fail(f"--role: teacher or student, got {role!r}", as_json)
    rows = [(item.text, item.style_spans) for item in read_labelled_jsonl(data)]
    mined = mine_handover_stops(rows, role, min_precision=min_precision)  # type: ignore[arg-type]
    path = write_handover_stops(predictor, mined)
    emit({"path": str(path), **mined}, as_json, human=f"{len(mined['stops'])} stops covering "
         f"{mined['coverage']:.0%} of {mined['boundaries']} boundaries -> {path}")


def _metrics_table(title: str, baseline, metrics) -> Table:
    table = Table("metric", *(["untrained head"] if baseline else []), "value", title=title)
    rows = [
        ("token accuracy", lambda m: m.token_accuracy),
        ("style-token F1", lambda m: m.style_f1),
        ("style starts P", lambda m: m.style_starts.precision),
        ("style starts R", lambda m: m.style_starts.recall),
        ("style starts F1", lambda m: m.style_starts.f1),
        ("capability starts P", lambda m: m.capability_starts.precision),
        ("capability starts R", lambda m: m.capability_starts.recall),
        ("capability starts F1", lambda m: m.capability_starts.f1),
    ]
    for label, get in rows:
        table.add_row(label, *([f"{get(baseline):.4f}"] if baseline else []), f"{get(metrics):.4f}")
    return table
