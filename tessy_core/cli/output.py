"""Shared output helpers: `--json` prints one JSON object for machines; people get rich text."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console(stderr=True)


def emit(payload: dict[str, Any], as_json: bool, human: str | None = None) -> None:
    """Print `payload` as JSON on stdout (machines) or as `human` text (people)."""
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str, sort_keys=True) + "\n")
        sys.stdout.flush()
    else:
        Console().print(human if human is not None else payload)


def fail(message: str, as_json: bool, code: int = 1, **extra: Any) -> None:
    """Report an error clearly and exit non-zero."""
    import typer

    if as_json:
        sys.stdout.write(json.dumps({"ok": False, "error": message, **extra}, default=str) + "\n")
    else:
        console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def progress_bars(title: str, as_json: bool, with_status: bool = True):
    """The one progress display of every long command: `title` (a rich format string over the
    task), a bar, done/total, an optional `status` field, elapsed time; off under `--json`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    status = [TextColumn("{task.fields[status]}")] if with_status else []
    return Progress(
        TextColumn(title), BarColumn(), MofNCompleteColumn(), *status, TimeElapsedColumn(),
        console=console, disable=as_json,
    )
