"""`tessy build --config FILE`: run the `build_dataset` Prefect flow with a progress display.

Without `PREFECT_API_URL` Prefect starts a temporary local server for the run; point it at a
`prefect server` to see the run and its artifacts in the UI.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tessy_core.cli.output import console, emit, fail, progress_bars


def build(
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False, help="build YAML (BuildConfig)"),
    new_prompts_only: bool = typer.Option(
        None, "--new-prompts-only/--all-prompts", help="override the config: skip prompts earlier builds used"
    ),
    skip_preflight: bool = typer.Option(
        False, "--skip-preflight", help="build even when the offline preflight finds problems (see tessy preflight)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print outcome counts and the version as one JSON object"),
) -> None:
    """Build the next version of a dataset: select prompts, generate, verify, validate, publish.

    The offline part of `tessy preflight` runs first: a build it finds would fail or silently
    degrade does not start (`--skip-preflight` starts it anyway)."""
    from pydantic import ValidationError

    from tessy_core.builder.config import load_build_config

    try:
        build_config = load_build_config(config)
    except (ValidationError, ValueError, OSError) as error:
        fail(f"invalid build config {config}: {error}", as_json)
        return
    if new_prompts_only is not None:
        build_config = build_config.model_copy(update={"new_prompts_only": new_prompts_only})
    if not skip_preflight:
        from tessy_core.preflight import run_preflight

        report = run_preflight(build_config.generation, online=False)
        if not report.ok:
            fail(
                "preflight: this build would fail or degrade: " + "; ".join(report.errors)
                + f". See `tessy preflight --config {config}`; --skip-preflight builds anyway.",
                as_json, dataset=build_config.dataset, preflight=report.to_record(),
            )
            return
        for warning in report.warnings:
            if not as_json:
                console.print(f"[yellow]preflight warning:[/] {warning}")

    try:
        result = run_with_progress(build_config, as_json)
    except Exception as error:  # noqa: BLE001 - any failure is reported, the build stays resumable
        fail(
            f"build failed: {type(error).__name__}: {error}. Run the same command again to continue it.",
            as_json, dataset=build_config.dataset,
        )
        return
    payload = {"ok": result.status != "blocked", **result.model_dump(mode="json")}
    emit(payload, as_json, human=_human(result))
    if result.status == "blocked":
        raise typer.Exit(2)


def run_with_progress(build_config, as_json: bool):
    """Run the build flow with a progress bar for people (none with --json); returns its result."""
    from flows.build import run_build
    from tessy_core.builder.progress import BuildEvent, listening

    with progress_bars("[bold]build[/] {task.fields[stage]}", as_json) as progress:
        task = progress.add_task("samples", total=None, stage="planning", status="")
        counts = {"ok": 0, "failed": 0}

        def on_event(event: BuildEvent) -> None:
            if event.kind == "planned":
                progress.update(
                    task, total=event.data["samples"], completed=event.data["samples_done"], stage="generating",
                    status=f"{event.data['shards']} shards, {event.data['shards_done']} done earlier",
                )
            elif event.kind == "sample":
                counts["ok" if event.data["status"] == "ok" else "failed"] += 1
                progress.update(task, advance=1, status=f"ok {counts['ok']} failed {counts['failed']}")
            elif event.kind == "stage":
                progress.update(task, stage=event.data["stage"])

        with listening(on_event):
            return run_build(build_config)


def _human(result) -> str:
    from tessy_core.builder.report import outcome_rows, usage_rows

    lines = [f"[bold]{result.message}[/]"]
    if result.build_id:
        lines.append(f"  build {result.build_id}" + (" (resumed)" if result.resumed else ""))
    for row in outcome_rows(result):
        if row["samples"]:
            lines.append(f"  {row['outcome']}: {row['samples']} {row['top reasons'] and '(' + row['top reasons'] + ')'}")
    for row in usage_rows(result):
        lines.append(
            f"  {row['model']}: {row['requests']} requests, {row['tokens generated']} tokens "
            f"({row['tokens kept']} kept, {row['tokens thrown away']} thrown away)"
        )
    figures = result.figures
    if figures.get("pass_rate") is not None:
        share = figures.get("teacher_token_share_mean")
        lines.append(
            f"  pass rate on hidden tests {figures['pass_rate']:.2f}"
            + (f", teacher token share {share:.2f}" if share is not None else "")
        )
    if result.validation:
        lines.append(f"  validation {'passed' if result.validation.get('success') else 'FAILED'}")
    if result.uri:
        lines.append(f"  -> {result.uri}")
    return "\n".join(lines)


COMMANDS = [build]
