"""`tessy toyworld build|report`: the small trained model world (CPU demo, tests, benchmarks)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer

from tessy_core.cli.output import console, emit, progress_bars

app = typer.Typer(help="The small trained model world: a teacher and a student you can run on a CPU.", no_args_is_help=True)


def _build(root: Optional[Path]):
    from tessy_core.toyworld.build import build_world

    return build_world(root=root, progress=lambda stage, message: console.print(f"[dim]toyworld {stage}:[/] {message}"))


@app.command()
def build(
    root: Optional[Path] = typer.Option(None, "--root", help="where to build (default: the cache)"),
    as_json: bool = typer.Option(False, "--json", help="print where the world is as JSON"),
) -> None:
    """Build the world (first time: minutes on 2 cores), or print where the cached one is."""
    world = _build(root)
    manifest = world.manifest
    emit(
        manifest,
        as_json,
        human=f"world at [bold]{world.root}[/] (built in {manifest['build_seconds']} s)\n"
        + "\n".join(f"  {role}: {path}" for role, path in manifest["models"].items()),
    )


@app.command()
def report(
    root: Optional[Path] = typer.Option(None, "--root", help="the world to measure (default: the cache)"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="measure on the first N evaluation problems"),
    concurrency: int = typer.Option(16, "--concurrency", min=1),
    as_json: bool = typer.Option(False, "--json", help="print the figures as JSON"),
) -> None:
    """Pass rates per mode, style gap closed, predictor F1: the world's claim, measured."""
    from tessy_core.toyworld.report import measure_world

    world = _build(root)
    with progress_bars("[bold]{task.fields[mode]}", as_json, with_status=False) as bars:
        tasks: dict[str, int] = {}

        def on_progress(mode: str, done: int, total: int) -> None:
            if mode not in tasks:
                tasks[mode] = bars.add_task(mode, total=total, mode=mode)
            bars.update(tasks[mode], completed=done)

        result = asyncio.run(measure_world(world, limit=limit, concurrency=concurrency, progress=on_progress))
    emit({"ok": result.ok, **result.model_dump(mode="json")}, as_json, human=_human(result))
    if not result.ok:
        raise typer.Exit(1)


def _human(report) -> str:
    lines = [f"[bold]{report.problems} problems[/]"]
    for mode, figures in report.modes.items():
        lines.append(
            f"  {mode:13s} pass {figures.pass_rate:.2f}  student NLL {figures.student_nll:.2f}  "
            f"teacher share {figures.teacher_token_share:.2f}  requests {figures.requests}"
        )
    lines.append(f"  tessy / teacher_only pass: {report.tessy_vs_teacher_only:.2f}")
    lines.append(f"  style gap closed: {report.style_gap_closed:.2f}")
    lines.append(f"  predictor boundary F1: {report.predictor_boundary_f1}")
    lines += [f"  [{'green' if ok else 'red'}]{'ok ' if ok else 'MISS'}[/] {name}" for name, ok in report.checks.items()]
    return "\n".join(lines)
