"""`tessy preflight --config FILE`: would a build with this config run right? (tessy_core/preflight.py)"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tessy_core.cli.output import console, emit, fail


def preflight(
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False, help="build YAML or generation YAML"),
    offline: bool = typer.Option(False, "--offline", help="model folders and predictors only; ask no server"),
    show_prompts: bool = typer.Option(False, "--show-prompts", help="print the exact prompts each model reads"),
    sample: bool = typer.Option(True, "--sample/--no-sample", help="online: generate one sample per mode"),
    modes: Optional[list[str]] = typer.Option(None, "--mode", help="online sample mode(s); default: the config's"),
    problem: Optional[str] = typer.Option(None, "--problem", help="the problem to render and sample (default: a short one)"),
    sample_timeout_s: float = typer.Option(600.0, "--sample-timeout", help="seconds one sample may take"),
    strict: bool = typer.Option(False, "--strict", help="warnings fail too"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Check models, templates, markers, budgets, predictors and (online) servers before a build.

    Exits 1 with every reason when a build would fail or silently degrade."""
    from pydantic import ValidationError

    from tessy_core.config import Mode
    from tessy_core.preflight import SAMPLE_PROBLEM, load_any_generation_config, run_preflight

    try:
        generation = load_any_generation_config(config)
        chosen = [Mode(m) for m in modes] if modes else None
    except (ValidationError, ValueError, OSError) as error:
        fail(f"invalid config {config}: {error}", as_json)
        return
    report = run_preflight(
        generation, online=not offline, sample=sample, modes=chosen, problem=problem or SAMPLE_PROBLEM,
        strict=strict, sample_timeout_s=sample_timeout_s,
    )
    record = report.to_record(show_prompts=show_prompts)
    if as_json:
        emit(record, True)
    else:
        _print_human(report, show_prompts)
    if not report.ok:
        raise typer.Exit(1)


def _print_human(report, show_prompts: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = Console()
    if show_prompts:
        for role, prompts in report.prompts.items():
            for kind, text in prompts.items():
                out.rule(f"{role}: {kind}")
                out.print(escape(text), markup=True, highlight=False, soft_wrap=True)
        out.rule()
    colors = {"ok": "green", "warn": "yellow", "error": "bold red", "skip": "dim"}
    table = Table(title=f"tessy preflight ({'online' if report.online else 'offline'})", show_lines=False)
    for column in ("subject", "check", "status", "detail"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        table.add_row(check.subject, check.name, f"[{colors[check.status]}]{check.status}[/]", escape(check.detail))
    out.print(table)
    if report.ok:
        out.print(f"[green]ready[/]: no errors{f', {len(report.warnings)} warning(s)' if report.warnings else ''}")
    else:
        console.print(f"[bold red]not ready[/]: {len(report.errors)} problem(s) would make a build fail or degrade:")
        for reason in report.errors:
            console.print(f"  - {escape(reason)}")


COMMANDS = [preflight]
