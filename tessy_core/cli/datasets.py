"""`tessy datasets list|show` and the top-level `tessy export`: published dataset versions.

S3 bases (`--base s3://bucket/prefix`) take credentials, region and endpoint from the usual AWS
environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tessy_core.cli.output import emit, fail
from tessy_core.publish.naming import DEFAULT_BASE

if TYPE_CHECKING:
    from tessy_core.publish import Manifest


app = typer.Typer(help="Published dataset versions (Hugging Face Parquet layout + manifest).", no_args_is_help=True)

BaseOption = Annotated[
    str, typer.Option("--base", envvar="TESSY_DATASETS_BASE", help="local folder or s3://bucket/prefix")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]


@app.command("list")
def list_(base: BaseOption = DEFAULT_BASE, as_json: JsonOption = False) -> None:
    """Every dataset with its versions and the latest version's row counts."""
    from tessy_core.publish import PublishError, list_datasets

    try:
        datasets = [_dataset_summary(base, name) for name in list_datasets(base)]
    except PublishError as error:
        fail(str(error), as_json)
    lines = [f"{d['name']}: {', '.join(d['versions'])} (latest rows {d['latest_rows']})" for d in datasets]
    emit({"ok": True, "base": base, "datasets": datasets}, as_json, "\n".join(lines) or f"no datasets under {base}")


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME (latest version) or NAME@vN")],
    base: BaseOption = DEFAULT_BASE,
    as_json: JsonOption = False,
) -> None:
    """Summary of one version's manifest."""
    from tessy_core.publish import PublishError, resolve

    try:
        manifest = resolve(base, ref)
    except PublishError as error:
        fail(str(error), as_json)
    summary = manifest_summary(manifest)
    emit({"ok": True, "base": base, **summary}, as_json, _human_summary(summary))


def export(
    ref: Annotated[str, typer.Argument(help="NAME@vN (or NAME for the latest version)")],
    out: Annotated[Path, typer.Option("--out", help="JSONL file to write")],
    format: Annotated[str, typer.Option("--format", help="messages | prompt-completion")] = "messages",
    split: Annotated[str, typer.Option("--split", help="split to export")] = "train",
    base: BaseOption = DEFAULT_BASE,
    as_json: JsonOption = False,
) -> None:
    """Write a published split as JSONL for TRL (conversational `messages` or `prompt`/`completion`)."""
    from tessy_core.publish import EXPORT_FORMATS, PublishError, export as export_dataset

    if format not in EXPORT_FORMATS:
        fail(f"unknown --format {format!r}; use one of {', '.join(EXPORT_FORMATS)}", as_json)
    try:
        result = export_dataset(base, ref, format, out, split=split)
    except PublishError as error:
        fail(str(error), as_json)
    payload = {"ok": True, "ref": result.ref, "split": result.split, "format": result.format,
               "path": result.path, "rows": result.rows}
    emit(payload, as_json, f"wrote {result.rows} rows of {result.ref} ({result.split}) to {result.path}")


# Attached to the root app as top-level commands (see _register.py).
COMMANDS = [export]


def manifest_summary(manifest: Manifest) -> dict[str, Any]:
    from tessy_core.publish.naming import version_dir

    return {
        "name": manifest.name,
        "version": version_dir(manifest.version),
        "parent_version": version_dir(manifest.parent_version) if manifest.parent_version else None,
        "build_id": manifest.build_id,
        "created_at": manifest.created_at.isoformat(),
        "rows": manifest.row_counts,
        "files": len(manifest.files),
        "bytes": manifest.total_bytes,
        "models": manifest.models,
        "figures": manifest.figures,
        "validation": manifest.validation,
        "code": manifest.code.model_dump(),
    }


def _dataset_summary(base: str, name: str) -> dict[str, Any]:
    from tessy_core.publish import list_versions, resolve
    from tessy_core.publish.naming import version_dir

    latest = resolve(base, name)
    return {
        "name": name,
        "versions": [version_dir(number) for number in list_versions(base, name)],
        "latest": version_dir(latest.version),
        "latest_rows": latest.row_counts,
        "latest_created_at": latest.created_at.isoformat(),
    }


def _human_summary(summary: dict[str, Any]) -> str:
    lines = [f"[bold]{summary['name']}@{summary['version']}[/] (parent {summary['parent_version'] or 'none'})"]
    for label in ("build_id", "created_at", "rows", "files", "bytes", "models", "figures", "code"):
        lines.append(f"  {label}: {summary[label]}")
    return "\n".join(lines)
