"""`tessy generate`: samples for a prompt file, written to JSONL (resumable)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer

from tessy_core.cli.output import emit, fail, progress_bars
from tessy_core.enums import Mode


def generate(
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False, help="YAML with teacher/student/predictors/engine"),
    prompts: Path = typer.Option(..., "--prompts", exists=True, dir_okay=False, help="JSONL or Parquet prompts"),
    out: Path = typer.Option(..., "--out", help="output JSONL (appended; finished samples are skipped)"),
    mode: Optional[Mode] = typer.Option(None, "--mode", help="overrides the config's engine.mode"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="use at most N prompts"),
    samples: int = typer.Option(1, "--samples", min=1, help="samples per prompt"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary"),
) -> None:
    """Generate TESSY (or baseline) samples for a prompt file."""
    from tessy_core.config import load_generation_config
    from tessy_core.jobs.generate_jsonl import generate_jsonl

    try:
        generation = load_generation_config(config)
    except (ValueError, OSError) as error:
        fail(f"invalid config {config}: {error}", as_json)
        return
    with progress_bars("[bold]generate", as_json) as progress:
        task = progress.add_task("samples", total=None, status="")
        counts = {"ok": 0, "failed": 0}

        def on_progress(result, total):
            counts["ok" if result.ok else "failed"] += 1
            progress.update(task, total=total, advance=1, status=f"ok {counts['ok']} failed {counts['failed']}")

        summary = asyncio.run(
            generate_jsonl(generation, prompts, out, mode=mode, samples_per_prompt=samples, limit=limit, on_progress=on_progress)
        )
    emit(summary, as_json, human=_human(summary))


def _human(summary: dict) -> str:
    lines = [
        f"[bold]{summary['samples_ok']} ok, {summary['samples_failed']} failed[/] "
        f"({summary['samples_already_done']} already done) in {summary['wall_s']} s -> {summary['out']}",
    ]
    for role, usage in summary["models"].items():
        lines.append(
            f"  {role}: {usage['requests']} requests, {usage['tokens_generated']} tokens "
            f"({usage['tokens_kept']} kept, {usage['tokens_discarded']} thrown away)"
        )
    if summary["prompts_rejected"]:
        lines.append(f"  {len(summary['prompts_rejected'])} prompt rows rejected (see --json)")
    return "\n".join(lines)


COMMANDS = [generate]
