"""`tessy evaluate sft|compare|toyworld`: does a dataset make the student better?

`sft` fine-tunes the student on a published version (TRL SFTTrainer) through the `evaluate_dataset`
Prefect flow and measures base vs fine-tuned on held-out problems; `compare` prints the recorded
evaluations of several versions side by side; `toyworld` runs the paper's headline experiment on
the small model world. Heavy libraries load inside the commands only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tessy_core.cli.output import console, emit, fail

app = typer.Typer(help="Fine-tune the student on a dataset version and measure it (SFT evaluations).",
                  no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]


@app.command("sft")
def sft(
    ref: Annotated[str, typer.Argument(help="NAME@vN (or NAME for the latest version)")],
    base: Annotated[Optional[str], typer.Option("--base", help="the student to fine-tune (default: the version's)")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", exists=True, dir_okay=False,
                                                   help="evaluation YAML (EvaluationConfig)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune the student on a version, then base vs fine-tuned on held-out problems."""
    from pydantic import ValidationError

    from tessy_core.evaluation.config import load_evaluation_config

    try:
        evaluation_config = load_evaluation_config(config)
    except (ValidationError, ValueError, OSError) as error:
        fail(f"invalid evaluation config {config}: {error}", as_json)
        return
    from flows.evaluate import evaluate_dataset
    from tessy_core.evaluation.pipeline import LeakageError
    from tessy_core.publish import PublishError

    try:
        result = evaluate_dataset(ref=ref, config=evaluation_config, base=base)
    except LeakageError as error:
        fail(str(error), as_json, code=3, leakage=True)
        return
    except (PublishError, ValueError) as error:
        fail(str(error), as_json)
        return
    except Exception as error:  # noqa: BLE001 - reported; the catalog row says failed, with the error
        fail(f"evaluation failed: {type(error).__name__}: {error}", as_json)
        return
    emit({"ok": True, **result.model_dump(mode="json")}, as_json, human=_human_result(result))


def _human_result(result) -> str:
    def spread(figures, key, sub=None):
        value = getattr(figures, key)[sub] if sub else getattr(figures, key)
        if value.mean is None:
            return "n/a"
        return f"{value.mean:.3f}" + (f" ± {value.std:.3f}" if len(value.values) > 1 else "")

    lines = [f"[bold]{result.ref}[/]: student {result.base_model} fine-tuned for {result.training.steps} steps on "
             f"{result.training.examples} conversations (loss {result.training.train_loss})",
             f"  {result.problems} held-out problems; evaluation {result.evaluation_id}",
             f"  {'':8s} {'pass@1':>16s} {'style NLL':>16s} {'format ok':>16s}"]
    for label, figures in (("base", result.base), ("tuned", result.tuned)):
        lines.append(f"  {label:8s} {spread(figures, 'pass_at', '1'):>16s} {spread(figures, 'style_nll'):>16s} "
                     f"{spread(figures, 'format_ok'):>16s}")
    lines.append(f"  fine-tuned student: {result.tuned_model_path}")
    return "\n".join(lines)


@app.command("compare")
def compare(
    refs: Annotated[list[str], typer.Argument(help="NAME@vN ... (the latest succeeded evaluation of each)")],
    catalog: Annotated[Optional[Path], typer.Option("--catalog", help="default: $TESSY_CATALOG or ./var/catalog.duckdb")] = None,
    as_json: JsonOption = False,
) -> None:
    """The recorded evaluations of several versions, side by side."""
    from tessy_core.catalog import Catalog, CatalogError, default_catalog_path
    from tessy_core.evaluation.records import latest_evaluation
    from tessy_core.evaluation.report import comparison_rows
    from tessy_core.publish import DatasetRef, PublishError

    store = Catalog(catalog or default_catalog_path())
    records, missing = [], []
    try:
        for text in refs:
            ref = DatasetRef.parse(text)
            if ref.version is None:
                fail(f"{text}: name a version (NAME@vN)", as_json)
                return
            record = latest_evaluation(store, ref.name, f"v{ref.version}")
            (records if record else missing).append(record or str(ref))
    except (CatalogError, PublishError) as error:
        fail(str(error), as_json)
        return
    rows = comparison_rows(records)
    if missing:
        fail(f"no succeeded evaluation of {', '.join(missing)} in {store.path}; run tessy evaluate sft first",
             as_json, rows=rows)
        return
    emit({"ok": True, "rows": rows}, as_json, human=_table(rows))


def _table(rows):
    from rich.table import Table

    table = Table(title="SFT evaluations (base vs fine-tuned student)")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row.get(column, "")) for column in columns))
    return table


@app.command("toyworld")
def toyworld(
    prompts: Annotated[int, typer.Option("--prompts", min=4, help="training prompts, the same for every version")] = 128,
    problems: Annotated[int, typer.Option("--problems", min=1, help="held-out evaluation problems")] = 120,
    repeats: Annotated[int, typer.Option("--repeats", min=1)] = 3,
    steps: Annotated[int, typer.Option("--steps", min=1, help="fine-tuning steps per version")] = 64,
    work: Annotated[Path, typer.Option("--work", help="catalog, versions, students of the experiment")] = Path("var/toyworld-sft"),
    predictors: Annotated[str, typer.Option("--predictors", help="learned (the world's) or lexicon (its exact style "
                                            "phrases; needs only the world's LMs)")] = "learned",
    as_json: JsonOption = False,
) -> None:
    """The paper's experiment in miniature: student_only / teacher_only / tessy data, student fine-tuned on each."""
    from tessy_core.evaluation.experiment import ExperimentConfig, run_experiment, table_markdown

    defaults = ExperimentConfig()
    config = ExperimentConfig(
        train_prompts=prompts, eval_problems=problems, repeats=repeats, work_dir=str(work), predictors=predictors,
        training=defaults.training.model_copy(update={"max_steps": steps}),
    )
    report = run_experiment(config, progress=None if as_json else (
        lambda stage, message: console.print(f"[dim]{stage}:[/] {message}")))
    human = table_markdown(report) + "\n\n" + "\n".join(f"- {line}" for line in report.findings)
    emit({"ok": True, **report.model_dump(mode="json")}, as_json, human=human)
