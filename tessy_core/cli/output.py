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
