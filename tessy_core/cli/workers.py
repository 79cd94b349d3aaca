"""`tessy workers start|status|stop`: the vLLM servers of this machine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from tessy_core.cli.output import emit, fail

if TYPE_CHECKING:
    from tessy_core.workers import StopResult, WorkerPool, WorkerStatus

app = typer.Typer(help="Launch, inspect and stop the local vLLM servers of a `workers:` config.", no_args_is_help=True)

ConfigOption = typer.Option(..., "--config", "-c", exists=True, dir_okay=False, help="YAML file with a `workers:` section")
JsonOption = typer.Option(False, "--json", help="print one JSON object on stdout")


@app.command()
def start(
    config: Path = ConfigOption,
    wait: bool = typer.Option(True, "--wait/--no-wait", help="wait until every server answers /health"),
    timeout_s: float | None = typer.Option(None, "--timeout", help="seconds to wait (default: startup_timeout_s)"),
    as_json: bool = JsonOption,
) -> None:
    """Start every configured server that is not running (installs the vLLM venv if missing)."""
    from tessy_core.workers import WorkerStartError

    pool = _pool(config, as_json)
    try:
        servers = pool.start(wait=wait, timeout_s=timeout_s)
    except WorkerStartError as exc:
        fail(f"servers failed to start: {exc}", as_json, failures=exc.failures, servers=_dump(pool.status()))
    emit({"ok": True, "servers": _dump(servers)}, as_json, _status_table(servers))


@app.command()
def status(config: Path = ConfigOption, as_json: bool = JsonOption) -> None:
    """Show each server: process alive, /health, URL, uptime."""
    servers = _pool(config, as_json).status()
    emit({"ok": True, "servers": _dump(servers)}, as_json, _status_table(servers))


@app.command()
def stop(config: Path = ConfigOption, as_json: bool = JsonOption) -> None:
    """Stop every server (SIGTERM to its process group, SIGKILL after the grace period)."""
    results = _pool(config, as_json).stop()
    emit({"ok": True, "servers": _dump(results)}, as_json, _stop_table(results))


def _pool(path: Path, as_json: bool) -> WorkerPool:
    from pydantic import ValidationError

    from tessy_core.config import load_yaml_model
    from tessy_core.workers import WorkerPool, WorkersConfig

    try:
        return WorkerPool(load_yaml_model(WorkersConfig, path, section="workers"))
    except (ValueError, ValidationError) as exc:
        fail(f"{path}: invalid workers config: {exc}", as_json)
        raise  # unreachable: fail() exits


def _dump(items: list[WorkerStatus] | list[StopResult]) -> list[dict]:
    return [item.model_dump(mode="json") for item in items]


def _status_table(servers: list[WorkerStatus]) -> Table:
    table = Table("name", "state", "url", "pid", "uptime", "log")
    for s in servers:
        uptime = f"{s.uptime_s:.0f} s" if s.uptime_s is not None else "-"
        table.add_row(s.name, s.state, s.openai_base_url, str(s.pid or "-"), uptime, str(s.log_path))
    return table


def _stop_table(results: list[StopResult]) -> Table:
    table = Table("name", "pid", "outcome")
    for r in results:
        table.add_row(r.name, str(r.pid or "-"), r.outcome)
    return table
